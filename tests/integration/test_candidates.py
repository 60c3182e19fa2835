"""Every scheme builds a candidate on the demo model that ORT CPU runs, within its accuracy bar."""

import json
import random

import onnx
import pytest

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import load_dataset, select_ids
from quantsweep.errors import QuantsweepError
from quantsweep.evaluate.run import EvalSettings, evaluate
from quantsweep.model.graph import decode_tail, float_compute_nodes, qdq_counts
from quantsweep.quantize.build import materialize
from quantsweep.schemes import REGISTRY, BuildContext, make_scheme

pytestmark = pytest.mark.slow  # every scheme's build: tens of seconds each

N_EVAL = 100
N_CALIB = 32  # calibration images of most schemes here (fewer than the product's 64: build time)
# the GPTQ 4-bit schemes are built with the product's default 64: the bars hold at it
FULL_CALIB = {"w4a16-graph-gptq-asym": 64, "w4a8-graph-gptq-percentile": 64}
# scheme -> minimum allowed delta mAP50-95 (points/100) vs FP32 on the demo subset
BARS = {"int8-qdq": -0.010, "int8-qdq-u8w": -0.010, "w8a16": -0.005, "w8a16-graph": -0.005, "fp8-qdq": -0.010, "w4a16-mse": -0.05,
        "w4a16-graph-gptq-asym": -0.005, "w4a8-graph-gptq-percentile": -0.010, "w4a16-graph-mse": -0.06, "int8-trt": -0.020, "int8-ov": -0.015,
        # measured 2026-12-07 on this subset: int8-ov-onnx -0.59, w8a8 (Brevitas) -1.19, w4a8-mse (no GPTQ) -5.24 points
        "int8-ov-onnx": -0.015, "w8a8": -0.020, "w4a8-mse": -0.070}
# the ablation: INT8 without the head policy loses the detector (measured -51.5 points): the policy's reason
COLLAPSES = {"int8-qdq-nohead": -0.10}
# W4A8 without VNNI (7-bit weights in its 8-bit convs, group multipliers up to 9) scores -0.88 on this subset
# with its percentile activation ranges; with min-max ranges it scored -1.40 and needed a -1.5 bar there


@pytest.fixture(scope="module")
def world(demo_dir, demo_val, tmp_path_factory):
    ids = select_ids(demo_val, N_EVAL)
    cal = load_dataset(demo_dir / "calib" / "images", demo_dir / "calib" / "annotations.json")
    calib = CalibSet.from_dataset(cal, N_CALIB, (320, 320), ids, demo_val)
    work = tmp_path_factory.mktemp("cands")
    ctx = BuildContext(demo_dir / "model.onnx", demo_dir / "model.pt", calib, work / "work")
    full = CalibSet.from_dataset(cal, 64, (320, 320), ids, demo_val)
    fp32 = evaluate(demo_dir / "model.onnx", demo_val, ids, EvalSettings(provider="cpu"))
    return {"ids": ids, "ctx": ctx, "out": work / "candidates", "fp32": fp32["map50_95"], "built": {},
            "ctx64": BuildContext(ctx.fp32_onnx, ctx.source_pt, full, work / "work64"), "out64": work / "candidates64"}


def _built(world, name):
    """The registry scheme ``name`` built once for this module (tests that only read it share it)."""
    if name not in world["built"]:
        full = name in FULL_CALIB
        world["built"][name] = materialize(make_scheme(name), world["ctx64" if full else "ctx"],
                                           world["out64" if full else "out"])
    return world["built"][name]


# w4a16-graph-adaround (an option GPTQ is measured against) is built on a small net in test_gptq: its
# 300 optimisation steps per conv cost ~40 s on the demo for nothing this test does not check elsewhere;
# so are w4a16-graph-gptq (symmetric groups: the option the asymmetric default is measured against) and
# w4a8-graph-gptq (min-max activation ranges: the option the percentile default is measured against)
@pytest.mark.parametrize("name", [n for n in REGISTRY
                                  if n not in ("w4a16-graph-adaround", "w4a16-graph-gptq", "w4a8-graph-gptq")])
def test_scheme_builds_runs_and_records(name, world, demo_val):
    cand = _built(world, name)
    rec = json.loads(cand.scheme_path.read_text())
    for key in ("tool", "tool_version", "calibration", "kept_float", "opset", "settings", "sha256", "scheme"):
        assert key in rec, key
    assert rec["calibration"]["images"] == FULL_CALIB.get(name, N_CALIB) and len(rec["calibration"]["ids_sha256_16"]) == 16
    if cand.model_path.suffix == ".xml":  # OpenVINO IR (int8-ov): FakeQuantize, scored by OpenVINO
        assert rec["format"] == "openvino-ir" and rec["op_counts"].get("FakeQuantize", 0) > 0
    else:
        assert rec["hygiene"]["qdq_before"] == rec["hygiene"]["qdq_after"] == qdq_counts(onnx.load(str(cand.model_path)))
        assert rec["hygiene"]["qdq_after"]["DequantizeLinear"] > 0
    m = evaluate(cand.model_path, demo_val, world["ids"], EvalSettings(provider="cpu"))
    delta = m["map50_95"] - world["fp32"]
    print(f"{cand.name}: mAP50-95 {m['map50_95']:.4f} (delta {delta:+.4f}), {rec['size_mb']} MB, "
          f"built in {rec['build_s']} s")
    if name in COLLAPSES:
        assert delta < COLLAPSES[name], f"{cand.name} kept its accuracy without the head policy ({delta:+.4f})"
    else:
        assert delta >= BARS[name], f"{cand.name} lost {-delta:.4f} mAP50-95"  # every scheme has a measured bar


def test_head_policy_keeps_the_decode_tail_float(world):
    cand = _built(world, "int8-qdq")
    tail = decode_tail(onnx.load(str(world["ctx"].fp32_onnx)))
    kept = {k["node"] for k in cand.record["kept_float"]}
    assert set(tail) <= kept
    ops = {n.op_type for n in onnx.load(str(world["ctx"].fp32_onnx)).graph.node if n.name in tail}
    assert {"TopK", "GatherElements", "Sigmoid", "Concat"} <= ops  # e2e decode ops are in it


def test_requested_k_is_the_effective_k(world):
    from quantsweep.quantize.sensitivity import rank_nodes

    full = _built(world, "int8-qdq")
    assert "pixel grid [0, 1]" in full.record["settings"]["input_quantizer"]  # exact for /255 inputs
    ranking = rank_nodes(world["ctx"].fp32_onnx, full.model_path, world["ctx"].calib.array(2), "int8",
                         probe_top=8)["ranking"]
    cand = materialize(make_scheme("int8-qdq", k=5), world["ctx"], world["out"] / "k", ranking)
    top5 = [r["node"] for r in ranking[:5]]
    assert set(top5) <= set(float_compute_nodes(onnx.load(str(cand.model_path))))
    bogus = [{"node": "no/such/node", "op": "Conv", "score": 1.0, "rank": 1, "precision": "int8"}] + ranking
    with pytest.raises(QuantsweepError, match="effective K"):
        materialize(make_scheme("int8-qdq", k=1), world["ctx"], world["out"] / "bad", bogus)
    with pytest.raises(QuantsweepError, match="exceeds"):
        materialize(make_scheme("int8-qdq", k=10_000), world["ctx"], world["out"] / "bad", ranking)


def test_sensitive_nodes_remove_more_held_out_damage_than_random_ones(world, demo_val):
    """Keeping the top-K ranked nodes in float removes more of the quantization damage than keeping
    K random nodes, on images the ranking never saw.

    The ranking is measured on 2 calibration-split images; the check runs on 16 validation images, in
    output space (relative squared error of the head tensors vs FP32): mAP on 100 images cannot
    resolve it where the CPU's int8 kernels are exact (VNNI machines lose < 1 point on the demo).
    """
    from quantsweep.quantize.sensitivity import GatedProbe, rank_nodes
    from quantsweep.schemes.ort_int8 import OrtInt8

    ctx, k = world["ctx"], 5
    full = materialize(OrtInt8(per_channel=False, reduce_range="on"), ctx, world["out"] / "pt")
    ranking = rank_nodes(ctx.fp32_onnx, full.model_path, ctx.calib.array(2), "int8")["ranking"]
    held_out = CalibSet.from_dataset(demo_val, 16, (320, 320)).array()
    probe = GatedProbe(ctx.fp32_onnx, full.model_path, held_out)
    none = probe.damage()
    top = probe.damage({r["node"] for r in ranking[:k]})
    rng = random.Random(0)
    randoms = [probe.damage({r["node"] for r in rng.sample(ranking, k)}) for _ in range(5)]
    print(f"held-out damage: all int8 {none:.4g}, top-{k} float {top:.4g}, random-{k} float "
          f"{[round(r, 4) for r in randoms]}")
    assert top < min(randoms) and top < 0.8 * none


@pytest.mark.parametrize("name", ["int8-qdq", "w8a16-graph"])
def test_float_dtype_fp16_keeps_qdq_and_io_types(name, world, demo_val):
    """--float-dtype fp16 for schemes whose tool has no fp16 mode: ModelOpt's AutoCast after the build."""
    from onnx import TensorProto

    fp32_cand = materialize(make_scheme(name), world["ctx"], world["out"] / "f32")
    cand = materialize(make_scheme(name, float_dtype="fp16"), world["ctx"], world["out"] / "f16")
    assert cand.name.endswith("-fp16") and cand.record["scheme"]["float_dtype"] == "fp16"
    assert "convert_to_f16" in cand.record["settings"]["float_dtype"] and cand.record["opset"] >= 19
    m = onnx.load(str(cand.model_path))
    assert qdq_counts(m) == qdq_counts(onnx.load(str(fp32_cand.model_path)))
    scales = {i.name: i.data_type for i in m.graph.initializer}
    dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert all(scales.get(n.input[1]) == TensorProto.FLOAT16 for n in dq if n.input[1] in scales)
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in list(m.graph.input) + list(m.graph.output)
               if v.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16))
    res = evaluate(cand.model_path, demo_val, world["ids"][:20], EvalSettings(provider="cpu"))
    assert res["num_detections"] > 0
    # activations quantized in fp16 on the CPU provider: the number is flagged, not trusted
    assert bool(res["warnings"]) == (name == "int8-qdq")


def test_a_plain_folder_of_photos_calibrates_from_the_cli(demo_dir, tmp_path):
    """No annotations anywhere near the folder: calibration reads no label."""
    import json
    import shutil

    from quantsweep.cli.main import main

    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for f in sorted((demo_dir / "calib" / "images").iterdir())[:6]:
        shutil.copy(f, photos / f.name)
    code = main(["quantize", "--model", str(demo_dir / "model.onnx"), "--scheme", "int8-qdq", "--calib-dir",
                 str(tmp_path / "photos"), "--calib-count", "4", "--out", str(tmp_path / "c")])
    assert code == 0
    record = json.loads((tmp_path / "c" / "int8-qdq.scheme.json").read_text())
    assert record["calibration"]["images"] == 4 and record["calibration"]["source"] == str(tmp_path / "photos")
