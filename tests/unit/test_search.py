"""The K search on synthetic evaluators: every probe measured, the smallest qualifying K found."""

import pytest

from quantsweep.sweep.search import Probe, search_k, within_budget

BUDGET = within_budget(1.0)


def _counting(curve):
    calls = []

    def evaluate(k):
        calls.append(k)
        return Probe(k, curve(k))

    return evaluate, calls


@pytest.mark.parametrize("threshold", [1, 2, 3, 7, 8, 9, 30, 40])
def test_monotone_accuracy_finds_the_smallest_qualifying_k(threshold):
    # the loss shrinks with K and crosses the 1-point budget exactly at `threshold`
    evaluate, calls = _counting(lambda k: -0.005 if k >= threshold else -0.02)
    r = search_k(evaluate, BUDGET, k_max=40, max_evals=20)
    assert r.best is not None and r.best.k == threshold and r.stopped == "smallest qualifying K found"
    assert calls == [p.k for p in r.trace] and len(set(calls)) == len(calls)  # each K measured once, in order
    assert len(calls) <= 2 + 2 * threshold.bit_length()  # logarithmic, not a sweep over K


def test_already_within_budget_stops_at_k0():
    evaluate, calls = _counting(lambda k: -0.002)
    r = search_k(evaluate, BUDGET, k_max=40)
    assert r.best.k == 0 and calls == [0] and r.stopped == "qualified at K=0"


def test_non_monotone_accuracy_returns_the_smallest_measured_qualifier():
    # K=4 qualifies, K=5..7 do not (noise), K>=8 do: bisection between 2 and 4 lands on 3 or 4
    curve = {0: -0.03, 1: -0.02, 2: -0.015, 3: -0.011, 4: -0.009, 5: -0.012, 6: -0.013, 7: -0.011}
    evaluate, calls = _counting(lambda k: curve.get(k, -0.004))
    r = search_k(evaluate, BUDGET, k_max=40)
    assert r.best.k == 4 and all(not BUDGET(p) for p in r.trace if p.k < 4)
    assert 4 in calls and 8 not in calls  # the doubling stopped at the first qualifier


def test_a_placement_that_never_qualifies_says_so():
    evaluate, calls = _counting(lambda k: -0.05)
    r = search_k(evaluate, BUDGET, k_max=20, max_evals=20)
    assert r.best is None and r.stopped == "no K qualifies" and calls == [0, 1, 2, 4, 8, 16, 20]


def test_the_evaluation_cap_is_respected_and_reported():
    evaluate, calls = _counting(lambda k: -0.005 if k >= 11 else -0.02)
    r = search_k(evaluate, BUDGET, k_max=40, max_evals=4)
    assert len(calls) == 4 and r.stopped == "max_evals reached" and r.best is None
    r = search_k(_counting(lambda k: -0.005 if k >= 11 else -0.02)[0], BUDGET, k_max=40, max_evals=6)
    assert r.stopped == "max_evals reached" and r.best.k == 16  # qualified, not yet narrowed down
    assert search_k(evaluate, BUDGET, k_max=40, max_evals=0).evaluations == 0


def test_a_failed_probe_never_qualifies():
    def evaluate(k):
        return Probe(k, None, error="build failed") if k == 2 else Probe(k, -0.005 if k >= 2 else -0.02)

    r = search_k(evaluate, BUDGET, k_max=40)
    assert r.best.k == 3 and any(p.error for p in r.trace)


def test_the_expected_confirmation_bound_sits_between_the_point_and_the_search_bound():
    p = Probe(0, -0.006, low=-0.014, high=0.002)  # point -0.6, search lower bound -1.4 points
    assert within_budget(1.0)(p) and not within_budget(1.0, shrink=1.0)(p)
    assert within_budget(1.0, shrink=0.5)(p)  # -0.6 - 0.5 * 0.8 = -1.0: exactly at the budget
    assert not within_budget(1.0, shrink=0.6)(p)
    assert not within_budget(1.0)(Probe(0, None, error="build failed"))


def test_a_gap_that_float_layers_do_not_close_stops_after_two_probes():
    # a runtime that miscomputes the whole quantized graph: K does not matter
    evaluate, calls = _counting(lambda k: -0.23 - 0.001 * (k % 3))
    r = search_k(evaluate, BUDGET, k_max=80, max_evals=8, target_delta=-0.01)
    assert calls == [0, 1, 2] and r.best is None and r.stopped.startswith("no progress")
    # a gap that closes slowly is still searched
    evaluate, calls = _counting(lambda k: -0.03 + 0.004 * k)
    r = search_k(evaluate, BUDGET, k_max=80, max_evals=8, target_delta=-0.01)
    assert r.best is not None and r.best.k == 5


def test_the_ranking_predicts_the_first_k_and_the_search_starts_there():
    from quantsweep.sweep.search import predicted_k

    ranking = [{"score": 0.4}, {"score": 0.2}, {"score": 0.2}, {"score": 0.1}, {"score": None}]
    sens = {"ranking": ranking, "damage_full": 1.0}
    # K=0 at -4 points (bound -5): 60 % of the damage must go within a 2-point budget -> 2 nodes
    assert predicted_k(sens, Probe(0, -0.04, -0.05), 2.0, 1.0) == 2
    assert predicted_k(sens, Probe(0, -0.04, -0.05), 0.25, 1.0) == 4  # more than the measured nodes carry
    assert predicted_k(sens, Probe(0, -0.01, -0.015), 2.0, 1.0) == 1  # already within: nothing to predict
    assert predicted_k({"ranking": ranking, "damage_full": 0.0}, Probe(0, -0.04, -0.05), 2.0, 1.0) == 1
    evaluate, calls = _counting(lambda k: -0.03 + 0.001 * k)
    r = search_k(evaluate, BUDGET, k_max=80, max_evals=8, first_k=12)
    assert calls[:2] == [0, 12] and r.best is not None and r.best.k == 20


def test_the_four_bit_size_search_runs_when_asked_or_when_the_target_computes_in_four_bits():
    from quantsweep.ledger import Ledger, Measurement
    from quantsweep.schemes import make_scheme
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.stage_search import size_search_wanted

    plan = [make_scheme("int8-qdq"), make_scheme("w4a16-graph-gptq-asym", onnx_only=True)]

    def measured(**evidence):
        ledger = Ledger()
        for name, ev in evidence.items():
            ledger.measure(Measurement(name.replace("_", "-"), "openvino", {"rows": [{"evidence": ev}]}))
        return ledger

    int8 = {"compute_layer_precisions": {"u8": 60, "f32": 2}}
    bench = measured(int8_qdq=int8, w4a16_graph_gptq_asym={"compute_layer_precisions": {"bf16": 64}})
    asked, why = size_search_wanted(SweepConfig(), bench, "openvino", plan)
    assert not asked and "file size, not speed" in why
    assert size_search_wanted(SweepConfig(size=True), bench, "openvino", plan)[0]
    four = measured(int8_qdq=int8, w4a16_graph_gptq_asym={"compute_layer_precisions": {"u4": 60}})
    asked, why = size_search_wanted(SweepConfig(), four, "openvino", plan)
    assert asked and "w4a16-graph-gptq-asym" in why
    assert not size_search_wanted(SweepConfig(), four, "ort-cpu", plan)[0]  # the evidence is the target's own
    nbits = measured(int8_qdq=int8, w4a16_graph_gptq_asym={"optimized_op_counts": {"MatMulNBits": 3}})
    assert size_search_wanted(SweepConfig(), nbits, "openvino", plan)[0]
    # an 8-bit candidate's int8 kernels are not 4-bit compute
    assert not size_search_wanted(SweepConfig(), measured(int8_qdq=int8), "openvino", plan)[0]


def test_a_node_s_float_cost_is_its_fp32_time_minus_its_int8_time_on_the_runtime():
    from quantsweep.sweep.search import float_costs

    fp32 = [{"name": "/m.0/conv/Conv/WithoutBiases", "ms": 0.9}, {"name": "/m.0/conv/Conv/", "ms": 0.1},
            {"name": "/m.10/conv/Conv", "ms": 0.5}, {"name": "/m.1/conv/Conv", "ms": 0.2}]
    int8 = [{"name": "/m.0/conv/Conv/WithoutBiases", "ms": 0.4}, {"name": "/m.10/conv/Conv", "ms": 0.3},
            {"name": "/m.1/conv/Conv", "ms": 0.25}]
    costs = float_costs(fp32, int8, ["/m.0/conv/Conv", "/m.1/conv/Conv", "/m.2/conv/Conv"])
    # every executed node named after the ONNX node counts; /m.10 is not /m.1's; faster float costs nothing
    assert costs == {"/m.0/conv/Conv": 0.6, "/m.1/conv/Conv": 0.0}


def test_the_latency_aware_order_puts_cheap_damage_first_and_unpriced_nodes_last():
    from quantsweep.sweep.search import half_damage_k, latency_order

    ranking = [{"node": "stem", "score": 0.5}, {"node": "neck", "score": 0.3}, {"node": "head", "score": 0.2},
               {"node": "deep", "score": None}]
    order = latency_order(ranking, {"stem": 2.0, "neck": 0.1, "head": 0.0})
    assert [n["node"] for n in order] == ["head", "neck", "stem", "deep"]  # 0.2/0.01, 0.3/0.1, 0.5/2.0
    assert [n["node"] for n in ranking] == ["stem", "neck", "head", "deep"]  # the ranking itself is unchanged
    # half of the damage: the stem alone in today's order, the two cheap nodes in the latency-aware one
    assert half_damage_k({"ranking": ranking, "damage_full": 1.0})[0] == 1
    assert half_damage_k({"ranking": order, "damage_full": 1.0})[0] == 2
