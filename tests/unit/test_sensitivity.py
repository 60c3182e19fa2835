"""The sensitivity ranking: gated probes, the local-error screen and the two-stage ranking."""

import pytest
from tests.conftest import tiny_convnet, tiny_ort_int8

from quantsweep.errors import QuantsweepError
from quantsweep.quantize.sensitivity import GatedProbe, rank_nodes, ranking_markdown


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory):
    d = tmp_path_factory.mktemp("sens")
    fp32 = tiny_convnet(d / "fp32.onnx")
    q, data = tiny_ort_int8(fp32, d / "int8.onnx", per_channel=False)
    return fp32, q, data[:, 0]


def test_restoring_nodes_reduces_damage(tiny_int8):
    fp32, q, images = tiny_int8
    probe = GatedProbe(fp32, q, images[:2], exclude=set())
    assert probe.nodes == ["conv0", "conv1", "conv2"]
    none, one, every = probe.damage(), probe.damage({"conv1"}), probe.damage(set(probe.nodes))
    assert every < one < none and every < 1e-3 * none
    with pytest.raises(QuantsweepError, match="not rankable"):
        probe.damage({"relu0"})


def test_local_errors_match_quantizing_each_conv_alone(tiny_int8):
    fp32, q, images = tiny_int8
    probe = GatedProbe(fp32, q, images[:2], exclude=set())
    local = probe.local_errors()
    assert set(local) == set(probe.nodes) and all(v > 0 for v in local.values())
    assert max(local.values()) < 0.5  # relative errors of 8-bit quantization are small


def test_two_stage_ranking_probes_only_the_screened_top(tiny_int8):
    fp32, q, images = tiny_int8
    x = images[:2]
    full = rank_nodes(fp32, q, x, "int8", exclude=set(), probe_top=None)
    two = rank_nodes(fp32, q, x, "int8", exclude=set(), probe_top=1)
    assert [r["method"] for r in full["ranking"]] == ["probe"] * 3
    assert [r["method"] for r in two["ranking"]] == ["probe", "screen", "screen"]
    assert {r["node"] for r in two["ranking"]} == {r["node"] for r in full["ranking"]}
    assert [r["rank"] for r in two["ranking"]] == [1, 2, 3]
    # the probed node's score is the exact measurement the exhaustive ranking made for it
    first = two["ranking"][0]
    assert first["score"] == pytest.approx(next(r["score"] for r in full["ranking"] if r["node"] == first["node"]))
    assert two["cost"]["forward_passes"] < full["cost"]["forward_passes"]
    assert "screened" in ranking_markdown(two)
    with pytest.raises(QuantsweepError, match="probe_top"):
        rank_nodes(fp32, q, x, "int8", exclude=set(), probe_top=0)


def test_weights_only_gating_leaves_quantized_activations_quantized(tiny_int8):
    """A 4-bit scheme's K set keeps weights at 8 bits, activations as they are: its ranking restores
    weights only, so with every gate open the activations are still quantized (damage is left vs FP32)."""
    import numpy as np
    import onnxruntime as ort

    fp32, q, images = tiny_int8
    x = images[:2]
    full = GatedProbe(fp32, q, x, exclude=set())
    weights = GatedProbe(fp32, q, x, exclude=set(), weights_only=True)
    assert weights.nodes == full.nodes
    # all gates open: float weights, int8 activations -> differs from FP32 by the activations' error
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    open_all = np.ones(len(weights.nodes), bool)
    fp32_out = ref.run(None, {"images": x[:1]})[0]
    gated_open = weights._sess.run(weights.probes, {"images": x[:1], "qs_gates": open_all})[-1]
    float_open = full._sess.run(full.probes, {"images": x[:1], "qs_gates": open_all})[-1]
    err_full = float(np.square(float_open - fp32_out).mean())
    err_weights = float(np.square(gated_open - fp32_out).mean())
    assert err_weights > 2 * err_full, (err_weights, err_full)
    ranked = rank_nodes(fp32, q, x, "int8", exclude=set(), probe_top=None, weights_only=True)
    assert ranked["restores"].startswith("weights only") and len(ranked["ranking"]) == 3

