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


def test_per_weight_order_ranks_damage_removed_per_weight_element(tiny_int8):
    """A 4-bit family's K set costs file size in proportion to the weights kept at 8 bits: its ranking
    orders the measured nodes by damage removed per weight element (the greedy knapsack order)."""
    import onnx
    from onnx import numpy_helper

    fp32, q, images = tiny_int8
    x = images[:2]
    by_damage = rank_nodes(fp32, q, x, "int8", exclude=set(), probe_top=None, weights_only=True)
    # probe_top=1: the screen is skipped, every node is measured (a small conv that does much damage
    # per byte has a small local error and would go unmeasured)
    by_density = rank_nodes(fp32, q, x, "int8", exclude=set(), probe_top=1, weights_only=True, per_weight=True)
    assert [r["method"] for r in by_density["ranking"]] == ["probe"] * 3
    assert by_damage["order"] == "damage removed" and by_density["order"].startswith("damage removed per weight")
    model = onnx.load(str(fp32))
    weights = {i.name: numpy_helper.to_array(i).size for i in model.graph.initializer if len(i.dims) >= 2}
    expected = {n.name: sum(weights.get(i, 0) for i in n.input) for n in model.graph.node if n.op_type == "Conv"}
    score = {r["node"]: r["score"] for r in by_damage["ranking"]}
    for r in by_density["ranking"]:
        assert r["weight_elements"] == expected[r["node"]] > 0
        assert r["score"] == pytest.approx(score[r["node"]])  # the same measurements, another order
        assert r["density"] == pytest.approx(r["score"] / r["weight_elements"])
    densities = [r["density"] for r in by_density["ranking"]]
    assert densities == sorted(densities, reverse=True)
    assert [r["score"] for r in by_damage["ranking"]] == sorted(score.values(), reverse=True)
    assert [r["rank"] for r in by_density["ranking"]] == [1, 2, 3]
    table = ranking_markdown(by_density)
    assert "per weight element" in table and f"{by_density['ranking'][0]['weight_elements']:,} |" in table
    assert "per weight element" not in ranking_markdown(by_damage)
