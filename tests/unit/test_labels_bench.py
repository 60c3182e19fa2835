"""Honest labels from the graph ORT really runs, and failure-as-a-row benchmarking."""

import numpy as np
import pytest
from tests.conftest import tiny_convnet as _tiny_convnet
from tests.conftest import tiny_ort_int8

from quantsweep.bench.measure import bench_markdown, benchmark
from quantsweep.bench.timing import speedup_interval, summarize
from quantsweep.errors import QuantsweepError
from quantsweep.runtimes.base import BenchSettings
from quantsweep.runtimes.tensorrt import label_from_trt_layers


@pytest.fixture(scope="module")
def tiny_ort(tmp_path_factory):
    """The tiny FP32 convnet and its ORT int8 QDQ (a second)."""
    d = tmp_path_factory.mktemp("tiny")
    fp32 = _tiny_convnet(d / "fp32.onnx")
    _, data = tiny_ort_int8(fp32, d / "ort_int8.onnx")
    import numpy as np

    np.save(d / "calib.npy", data[:, 0])
    return d


@pytest.fixture(scope="module")
def tiny_models(tiny_ort):
    """Plus ModelOpt's int8 and fp8 QDQ of it (~12 s: two ModelOpt processes)."""
    import subprocess
    import sys

    d = tiny_ort
    fp32 = d / "fp32.onnx"
    for mode in ("int8", "fp8"):  # ModelOpt patches ORT's quantizer process-wide: run it apart, as quantsweep does
        subprocess.run([sys.executable, "-m", "modelopt.onnx.quantization", "--onnx_path", str(fp32),
                        "--quantize_mode", mode, "--calibration_data_path", str(d / "calib.npy"),
                        "--calibration_eps", "cpu", "--high_precision_dtype", "fp32",
                        "--output_path", str(d / f"modelopt_{mode}.onnx")], check=True, capture_output=True)
    return d


@pytest.mark.slow
def test_labels_come_from_the_optimized_graph(tiny_models):
    d = tiny_models
    models = [("fp32", d / "fp32.onnx"), ("ort-int8", d / "ort_int8.onnx"),
              ("modelopt-int8", d / "modelopt_int8.onnx"), ("modelopt-fp8", d / "modelopt_fp8.onnx")]
    res = benchmark(models, BenchSettings(iters=5, warmup=1), d / "work")
    labels = {r["candidate"]: r["label"] for r in res["rows"]}
    assert labels == {"fp32": "float", "ort-int8": "accelerated", "modelopt-int8": "emulated",
                      "modelopt-fp8": "emulated"}, res["rows"]
    ev = {r["candidate"]: r["evidence"] for r in res["rows"]}
    assert ev["ort-int8"]["optimized_op_counts"].get("QLinearConv", 0) == 3
    assert ev["modelopt-int8"]["float_compute_on_dequantized_inputs"] == 3
    for r in res["rows"]:
        for key in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput_ips", "speedup_vs_fp32"):
            assert r[key] is not None and r[key] > 0
        if r["candidate"] != "fp32":  # 5 rounds: too few for a 95 % interval on the speed-up
            assert r["speedup_ci95_low"] is None and r["speedup_ci95_high"] is None
        assert r["error"] is None and r["input_shape"] == [1, 3, 32, 32]
    assert res["env"]["cpu"]["flags"] and "onnxruntime" in res["rows"][0]["runtime"]


def test_a_failing_model_or_backend_is_a_row(tiny_ort, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    res = benchmark([("fp32", tiny_ort / "fp32.onnx"), ("broken", broken)],
                    BenchSettings(backends=("ort-cpu", "tensorrt"), iters=3, warmup=1))
    rows = {(r["candidate"], r["backend"]): r for r in res["rows"]}
    assert rows[("fp32", "ort-cpu")]["error"] is None and rows[("fp32", "ort-cpu")]["samples"] == 3
    assert rows[("broken", "ort-cpu")]["label"] == "unsupported" and "broken.onnx" in rows[("broken", "ort-cpu")]["error"]
    assert "not available here" in rows[("fp32", "tensorrt")]["error"]


def test_a_candidate_row_carries_its_speed_up_interval(tiny_ort):
    res = benchmark([("fp32", tiny_ort / "fp32.onnx"), ("same", tiny_ort / "fp32.onnx")],
                    BenchSettings(iters=12, warmup=1))
    fp32, same = res["rows"]
    assert fp32["speedup_ci95_low"] is None  # the reference has no speed-up over itself
    assert 0 < same["speedup_ci95_low"] <= same["speedup_ci95_high"]  # order statistics of the paired ratios
    assert "[" in bench_markdown(res, "fp32").splitlines()[-1]


def test_fixed_batch_is_reported_not_crashed(tiny_ort):
    res = benchmark([("fp32", tiny_ort / "fp32.onnx")], BenchSettings(batches=(4,), iters=2, warmup=1))
    assert "fixed batch of 1" in res["rows"][0]["error"]


def test_unknown_backend_suggests(tmp_path):
    with pytest.raises(QuantsweepError, match="did you mean 'ort-cpu'"):
        benchmark([("fp32", tmp_path / "m.onnx")], BenchSettings(backends=("ort-cpo",)))


def test_timing_summary_is_pure_and_named():
    s = summarize([10.0] * 9 + [100.0], batch=8)
    assert s["latency_p50_ms"] == 10.0 and s["latency_min_ms"] == 10.0 and s["throughput_ips"] == 800.0
    assert s["latency_p99_ms"] > 90 and s["samples"] == 10


def test_speedup_interval_pairs_the_rounds_and_covers_the_true_ratio():
    rng = np.random.default_rng(0)
    # the machine's slow phases hit both models of a round: pairing cancels them, so a steady 1.25x
    # is resolved even when the rounds' own latencies vary by 2x
    phase = rng.uniform(1.0, 2.0, 40)
    low, high = speedup_interval(10.0 * phase, 8.0 * phase)
    assert low == high == 1.25
    # no true difference: the 95 % interval contains 1 in about 95 % of benches (measured coverage)
    hits = 0
    for _ in range(1000):
        ref, cand = rng.lognormal(0.0, 0.1, 30), rng.lognormal(0.0, 0.1, 30)
        lo, hi = speedup_interval(ref, cand)
        hits += lo <= 1.0 <= hi
    assert 0.93 <= hits / 1000 <= 0.995
    assert speedup_interval([10.0] * 5, [9.0] * 5) is None  # five rounds cannot give a 95 % interval


def test_trt_labels_and_command():
    def layer(kind, dtype):  # the shape of the engine inspector's detailed JSON
        return {"Name": f"/model.0/conv/Conv + {kind}", "LayerType": kind,
                "Inputs": [{"Name": "x", "Format/Datatype": dtype}], "Outputs": [{"Name": "y", "Format/Datatype": "Half"}]}

    int8 = [layer("CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format"),
            layer("Reformat", "Row major linear FP32"), layer("CaskConvolution", "Row major linear FP16 format")]
    label, ev = label_from_trt_layers(int8)
    assert label == "accelerated" and ev["compute_layer_input_precisions"] == {"INT8": 1, "FP16": 1}
    assert label_from_trt_layers([layer("CaskConvolution", "Row major linear Half")])[0] == "emulated"
    assert label_from_trt_layers([layer("CaskGemmMatrixMultiply", "Row major linear FP8")])[0] == "accelerated"
    assert label_from_trt_layers([layer("Reformat", "Int8")])[0] == "emulated"  # not a compute layer


@pytest.mark.gpu
def test_cuda_provider_runs_with_iobinding_and_qdq_is_emulated(tmp_path):
    fp32 = _tiny_convnet(tmp_path / "fp32.onnx")
    int8, _ = tiny_ort_int8(fp32, tmp_path / "int8.onnx")
    res = benchmark([("fp32", fp32), ("int8", int8)], BenchSettings(backends=("ort-cuda",), iters=5))
    rows = {r["candidate"]: r for r in res["rows"]}
    assert rows["fp32"]["error"] is None and rows["fp32"]["provider"] == "CUDAExecutionProvider", rows
    # ORT's CUDA provider has no int8 convolution: QDQ runs as float plus Q/DQ overhead
    assert rows["int8"]["error"] is None and rows["int8"]["label"] == "emulated", rows["int8"]


@pytest.mark.slow
def test_openvino_labels_from_the_executed_graph(tiny_models):
    pytest.importorskip("openvino")
    d = tiny_models
    models = [("fp32", d / "fp32.onnx"), ("ort-int8", d / "ort_int8.onnx"), ("modelopt-fp8", d / "modelopt_fp8.onnx")]
    res = benchmark(models, BenchSettings(backends=("openvino",), iters=3, warmup=1))
    labels = {r["candidate"]: r["label"] for r in res["rows"]}
    assert labels == {"fp32": "float", "ort-int8": "accelerated", "modelopt-fp8": "emulated"}, res["rows"]
    assert res["rows"][1]["evidence"]["compute_layer_precisions"].get("u8", 0) >= 2
    # the float precision OpenVINO computes in is recorded: what the FP32 layers ran in (bf16 on AMX CPUs)
    fp32 = res["rows"][0]
    assert fp32["evidence"]["inference_precision"] == fp32["inference_precision"] in ("f32", "bf16", "f16")
    assert set(fp32["evidence"]["compute_layer_precisions"]) == {fp32["inference_precision"]}


@pytest.mark.gpu
def test_tensorrt_engines_label_int8_accelerated_and_add_an_fp16_reference(tiny_models):
    pytest.importorskip("tensorrt")
    d = tiny_models
    res = benchmark([("fp32", d / "fp32.onnx"), ("modelopt-int8", d / "modelopt_int8.onnx")],
                    BenchSettings(backends=("tensorrt",), iters=5), d / "trt")
    rows = {r["candidate"]: r for r in res["rows"]}
    assert set(rows) == {"fp32", "fp32-fp16-engine", "modelopt-int8"}, rows
    assert all(r["error"] is None for r in rows.values()), rows
    assert rows["fp32"]["label"] == "float" and rows["modelopt-int8"]["label"] == "accelerated"
    assert (d / "trt" / "tensorrt.timing.cache").is_file()


@pytest.mark.slow
def test_openvino_labels_nncf_int8_accelerated_and_weight_only_emulated(tiny_ort, tmp_path):
    """From the executed graph: NNCF's placement runs int8 convolutions; int8 weights decompressed
    into float convolutions (weight-only) are not acceleration."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import cv2
    import numpy as np

    from quantsweep.data.calibration import CalibSet
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import BuildContext, make_scheme

    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "photos" / f"{i}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    ctx = BuildContext(tiny_ort / "fp32.onnx", None, CalibSet.from_folder(tmp_path / "photos", 4, (32, 32)),
                       tmp_path / "work")
    nncf_int8 = materialize(make_scheme("int8-ov"), ctx, tmp_path / "c")
    weight_only = materialize(make_scheme("w8a16-graph"), ctx, tmp_path / "c")
    assert nncf_int8.record["tool"].startswith("nncf.quantize") and nncf_int8.record["registry"] == "int8-ov"
    # shipped as the OpenVINO IR NNCF's OpenVINO path wrote: .xml + .bin, both in the fingerprint
    assert nncf_int8.model_path.suffix == ".xml" and nncf_int8.model_path.with_suffix(".bin").is_file()
    assert nncf_int8.record["format"] == "openvino-ir" and nncf_int8.record["files"] == ["int8-ov.xml", "int8-ov.bin"]
    assert nncf_int8.record["op_counts"].get("FakeQuantize", 0) >= 2
    assert "pixel grid [0, 1]" in nncf_int8.record["settings"]["input_quantizer"]  # exact for /255 inputs
    res = benchmark([("fp32", tiny_ort / "fp32.onnx"), ("int8-ov", nncf_int8.model_path),
                     ("w8a16-graph", weight_only.model_path)], BenchSettings(backends=("openvino", "ort-cpu"),
                                                                            iters=3, warmup=1))
    ort_rows = {r["candidate"]: r for r in res["rows"] if r["backend"] == "ort-cpu"}
    assert ort_rows["int8-ov"]["label"] == "unsupported" and "OpenVINO IR" in ort_rows["int8-ov"]["error"]
    rows = {r["candidate"]: r for r in res["rows"] if r["backend"] == "openvino"}
    assert {n: r["label"] for n, r in rows.items()} == {"fp32": "float", "int8-ov": "accelerated",
                                                       "w8a16-graph": "emulated"}, res["rows"]
    assert rows["int8-ov"]["evidence"]["compute_layer_activation_types"].get("u8", 0) >= 2
    assert rows["w8a16-graph"]["evidence"]["low_precision_compute_layers"] == 0


def test_the_speed_up_point_is_the_median_paired_ratio_and_lies_inside_its_interval():
    import random

    from quantsweep.bench.timing import speedup_interval, speedup_median

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(6, 40)
        ref = [rng.uniform(8, 12) * (1 + rng.random()) for _ in range(n)]
        cand = [r / rng.uniform(1.2, 1.6) + rng.uniform(-1, 1) for r in ref]
        low, high = speedup_interval(ref, cand)
        point = speedup_median(ref, cand)
        assert low <= point <= high, (low, point, high)
