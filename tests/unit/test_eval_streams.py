"""Evaluation at throughput: OpenVINO's requests in flight give what one request at a time gives, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from quantsweep.data.letterbox import iter_batches

ov = pytest.importorskip("openvino")
pytestmark = pytest.mark.slow  # a demo INT8 build and OpenVINO compilations: ~25 s


@pytest.fixture(scope="module")
def int8_model(demo_dir, demo_val, tmp_path_factory):
    from quantsweep.data.calibration import CalibSet
    from quantsweep.data.coco import load_dataset
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import BuildContext, make_scheme

    work = tmp_path_factory.mktemp("streams")
    cal = load_dataset(demo_dir / "calib" / "images", demo_dir / "calib" / "annotations.json")
    calib = CalibSet.from_dataset(cal, 8, (320, 320), list(demo_val.images)[:40], demo_val)
    ctx = BuildContext(demo_dir / "model.onnx", None, calib, work / "work")
    return materialize(make_scheme("int8-qdq"), ctx, work).model_path


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_requests_in_flight_compute_what_the_latency_compiled_model_computes(which, demo_dir, demo_val, int8_model):
    from quantsweep.runtimes.openvino import open_openvino

    model = demo_dir / "model.onnx" if which == "fp32" else int8_model
    batches = list(iter_batches(demo_val, list(demo_val.images)[:24], (320, 320), 1))
    session = open_openvino(model, threads=2)
    streamed = list(session.run_many(batches, lambda b: b.pixels))
    assert session.requests >= 2, session.streams_note  # 2 cores: two streams, a request each
    assert [b.ids for b, _ in streamed] == [b.ids for b in batches]  # in the order fed
    latency = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_NUM_THREADS": 2})  # one at a time
    for b, out in streamed:
        assert np.array_equal(latency(b.pixels)[latency.outputs[0]], out), b.ids


def test_a_streams_compile_that_computes_otherwise_is_not_used(demo_dir, demo_val, int8_model):
    """The guard OpenVINO 2026.4's UINT4 W4A16 needs (several streams computed it wrongly): here the
    several-stream compile is made of another model, so its first outputs differ and every image is
    computed one request at a time by the one-stream compile."""
    from quantsweep.runtimes.openvino import open_openvino

    batches = list(iter_batches(demo_val, list(demo_val.images)[:6], (320, 320), 1))
    session = open_openvino(demo_dir / "model.onnx", threads=2)
    session.model = int8_model  # what run_many would compile with several streams
    got = list(session.run_many(batches, lambda b: b.pixels))
    assert session.requests == 1 and "differently" in session.streams_note
    assert [b.ids for b, _ in got] == [b.ids for b in batches]
    for b, out in got:
        assert np.array_equal(session.run(b.pixels), out)


def test_evaluation_on_openvino_uses_the_requests_and_says_so(demo_dir, demo_val):
    from quantsweep.evaluate.run import EvalSettings, predict

    ids = list(demo_val.images)[:12]
    dets, facts = predict(demo_dir / "model.onnx", demo_val, ids, EvalSettings(provider="openvino"))
    again, _ = predict(demo_dir / "model.onnx", demo_val, ids, EvalSettings(provider="openvino"))
    assert dets == again and dets and {d["image_id"] for d in dets} <= set(ids)
    # 12 images of a 7 ms model: a second compile would cost more than its streams save, and it says so
    assert facts["requests_in_flight"] == 1 and "second compile" in facts["requests_note"], facts
