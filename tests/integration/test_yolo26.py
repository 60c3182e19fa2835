"""YOLO26 (NMS-free, no DFL) through the pipeline, on the packaged YOLO26n demo detector.

Its layout is detected from both exports, the head policy's float set is read from the graph (no
DFL convolution exists, so only the non-compute decode tail stays float), and a small search runs
the whole study on ``--demo yolo26``.
"""

from __future__ import annotations

import json

import onnx
import pytest

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import select_ids
from quantsweep.model.export import export_onnx
from quantsweep.model.graph import COMPUTE_OPS, compute_nodes, decode_tail, float_compute_nodes
from quantsweep.model.info import inspect_onnx
from quantsweep.quantize.build import materialize
from quantsweep.schemes import BuildContext, make_scheme

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def y26(tmp_path_factory):
    """The YOLO26 demo detector: its checkpoint and both exports (end-to-end and raw) at 320."""
    from quantsweep.demo import DEMO_IMGSZ, checkpoint_path

    out = tmp_path_factory.mktemp("yolo26")
    pt = checkpoint_path("yolo26")
    return {"pt": pt, "work": out,
            "e2e": export_onnx(pt, out / "e2e.onnx", imgsz=DEMO_IMGSZ, head="e2e"),
            "raw": export_onnx(pt, out / "raw.onnx", imgsz=DEMO_IMGSZ, head="raw")}


@pytest.mark.parametrize("head, shape", [("e2e", (1, 300, 6)), ("raw", (1, 9, 2100))])
def test_yolo26_layouts_are_detected(y26, head, shape):
    info = inspect_onnx(y26[head])
    assert (str(info.layout), info.output_shapes[0]) == (head, shape)


@pytest.mark.parametrize("head", ["e2e", "raw"])
def test_yolo26_head_policy_keeps_only_the_decode_ops_float(y26, head):
    """No DFL convolution (its only Softmax is the backbone's attention): the tail is the decode
    arithmetic, every conv is quantized, and the box regression convs (4 output channels) feed the
    tail directly."""
    m = onnx.load(str(y26[head]))
    ops = {n.name: n.op_type for n in m.graph.node}
    tail = decode_tail(m)
    assert tail and not any(ops[n] in COMPUTE_OPS for n in tail)  # no DFL convolution to keep float
    softmax = [n for n, op in ops.items() if op == "Softmax"]
    assert softmax and not set(softmax) & set(tail)  # the backbone's attention (C2PSA) is not the head's
    if head == "e2e":
        assert {"TopK", "GatherElements"} <= {ops[n] for n in tail}
    producers = {o: n for n in m.graph.node for o in n.output}
    weights = {i.name: i for i in m.graph.initializer}
    feeding = {producers[i].name for n in m.graph.node if n.name in tail for i in n.input
               if i in producers and producers[i].op_type == "Conv"}
    box_convs = {c for c in feeding if weights[next(n for n in m.graph.node if n.name == c).input[1]].dims[0] == 4}
    assert len(box_convs) == 3  # one box regression conv per stride, read by the decode


def test_yolo26_int8_builds_with_its_decode_tail_float(y26, demo_dir, demo_val):
    ids = select_ids(demo_val, 4)
    calib = CalibSet.from_folder(demo_dir / "calib" / "images", 8, (320, 320), ids, demo_val)
    ctx = BuildContext(y26["e2e"], y26["pt"], calib, y26["work"] / "work")
    cand = materialize(make_scheme("int8-qdq"), ctx, y26["work"] / "int8")
    fp32 = onnx.load(str(y26["e2e"]))
    tail = decode_tail(fp32)
    kept = {k["node"] for k in cand.record["kept_float"]}
    assert set(tail) <= kept
    floating = set(float_compute_nodes(onnx.load(str(cand.model_path))))
    assert not floating & set(compute_nodes(fp32)) - kept  # every conv outside the kept set is quantized


def test_a_small_yolo26_search_runs_the_whole_study(tmp_path):
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.runner import run_sweep

    cfg = SweepConfig(out=tmp_path, demo="yolo26", schemes=("int8-qdq",), max_images=20, calib_count=8,
                      bench_seconds=0.3, bootstrap=200, sensitivity_images=1, sensitivity_probe_top=8,
                      backends=("ort-cpu",), confirm_images=40, confirm_step=20, finalists=2, budget=0.5,
                      max_evals=2, ablation=False, gallery=2)
    result = run_sweep(cfg)
    d = result.run_dir
    assert d.parent.name == "demo-yolo26"
    summary = json.loads((d / "results" / "summary.json").read_text())
    fp32 = json.loads((d / "results" / "fp32.metrics.json").read_text())
    assert fp32["run"]["layout"] == "e2e" and fp32["map50_95"] > 0.2  # the trained detector, decoded
    rec = summary["recommendation"]
    assert rec["reason"]  # a verdict, with its why; which one depends on this CPU's speeds, each checked below
    confirmation = json.loads((d / "confirmation.json").read_text())
    verdicts = {c["candidate"]: c["verdict"] for c in confirmation["results"]}
    if rec["status"] == "deploy":  # the pick passed its held-out test
        assert verdicts[rec["candidate"]] == "pass"
    elif rec["status"] == "unconfirmed":  # a finalist no held-out verdict passed
        assert verdicts.get(rec["candidate"]) == "undecided" and "pass" not in verdicts.values()
    else:  # FP32 stays: no finalist passed (FP32 was measured, so there is always a row to stay on)
        assert (rec["status"], rec["candidate"]) == ("fp32", "fp32") and "pass" not in verdicts.values()
    assert (rec["candidate"] or "FP32") in (d / "report.html").read_text()  # the report leads with it
    sens = json.loads((d / "sensitivity.json").read_text())
    assert sens  # the ranking ran on YOLO26's graph
    trace = json.loads((d / "search.json").read_text())["trace"]
    assert trace and all(t["candidate"].startswith("int8-qdq") for t in trace)
