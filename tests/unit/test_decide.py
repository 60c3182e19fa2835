"""The recommendation: fastest candidate within the accuracy budget, or an honest 'stay on FP32'."""

from quantsweep.decide.decision import decide, finalists
from quantsweep.results import Row


def _row(name, p50, low, backend="ort-cpu", delta=None, **extra):
    return Row(candidate=name, scheme="s", precision="int8", backend=backend, latency_p50_ms=p50, delta_ci95_low=low,
               delta_map50_95=low if delta is None else delta, speedup_vs_fp32=10.0 / p50,
               label=extra.pop("label", "accelerated"), **extra)


def test_fastest_within_budget_is_recommended():
    rows = [_row("fp32", 10.0, 0.0), _row("a", 6.0, -0.02), _row("b", 7.0, -0.004), _row("c", 8.0, -0.001),
            _row("nohead", 5.0, 0.0, ablation=True)]
    d = decide(rows, budget_points=1.0)
    rows = d.mark(rows)
    assert d.candidate == "b" and rows[2].recommended and "1.00-point budget" in d.reason
    assert not rows[4].recommended  # an ablation row is never the answer
    assert [r.candidate for r in rows if r.recommended] == ["b"]


def test_no_qualifier_says_which_faster_candidate_misses_and_by_how_much():
    rows = [_row("fp32", 10.0, 0.0), _row("fast", 6.0, -0.03), _row("near", 9.0, -0.0105),
            _row("slow-but-accurate", 12.0, -0.002)]
    d = decide(rows, budget_points=1.0)
    assert d.candidate == "fp32" and d.closest == "near"
    assert "closest: near (1.11× FP32, CI lower bound -1.05 points, 0.05 over the budget)" in d.reason
    assert ("within the budget but not measurably faster than FP32: slow-but-accurate (12.00 ms p50 vs 10.00, 0.83×)"
            in d.reason)
    assert [r.candidate for r in d.mark(rows) if r.recommended] == ["fp32"]


def test_a_speed_up_whose_interval_straddles_one_is_noise_not_a_reason_to_quantize():
    # real YOLOv5n on OpenVINO: an INT8 placement timed 1.01x in one run and 0.99x in the next
    noisy = _row("noisy", 9.7, -0.002, speedup_ci95_low=0.97, speedup_ci95_high=1.06)
    d = decide([_row("fp32", 10.0, 0.0), noisy], budget_points=1.0)
    assert d.candidate == "fp32" and d.closest == "noisy"
    assert "not measurably faster than FP32: noisy (9.70 ms p50 vs 10.00, 1.03× [0.97, 1.06])" in d.reason
    sure = _row("sure", 9.7, -0.002, speedup_ci95_low=1.01, speedup_ci95_high=1.05)
    d = decide([_row("fp32", 10.0, 0.0), noisy, sure], budget_points=1.0)
    assert d.candidate == "sure" and "1.03× [1.01, 1.05] FP32" in d.reason
    assert [r.candidate for r in finalists([_row("fp32", 10.0, 0.0), noisy, sure], 1.0, "ort-cpu", 3)] == ["sure"]


def test_target_backend_defaults_to_where_fp32_is_fastest():
    rows = [_row("fp32", 10.0, 0.0), _row("a", 6.0, -0.002), _row("fp32", 4.0, 0.0, backend="openvino"),
            _row("a", 3.0, -0.002, backend="openvino")]
    d = decide(rows, budget_points=1.0)
    assert d.backend == "openvino" and d.candidate == "a" and d.mark(rows)[3].recommended


def test_a_collapsed_class_is_flagged_even_when_the_mean_looks_fine_and_never_recommended():
    import dataclasses

    from quantsweep.results import collapsed_classes

    fp32 = {"1": 0.60, "2": 0.40, "3": 0.02, "4": 0.50}
    cand = {"1": 0.61, "2": 0.15, "3": 0.00, "4": 0.45}  # class 2 lost 60 %; class 3 is too weak to judge
    assert collapsed_classes(cand, fp32) == "2: 0.40→0.15"
    assert collapsed_classes(cand, fp32, {"1": 50, "2": 4, "4": 30}) is None  # 4 boxes: noise, not judged
    assert collapsed_classes(cand, fp32, {"1": 50, "2": 12, "4": 30}) == "2: 0.40→0.15"
    rows = [_row("fp32", 10.0, 0.0), _row("fast", 5.0, -0.001), _row("slow", 8.0, -0.002)]
    rows[1] = dataclasses.replace(rows[1], collapsed="2: 0.40→0.15")
    assert decide(rows, 1.0).candidate == "slow"


def test_a_candidate_losing_more_than_ten_points_is_a_collapse_with_its_scheme_in_the_reason(tmp_path):
    import json

    from quantsweep.results import collapse_verdict, summary_rows
    from quantsweep.schemes import make_scheme

    record = {"settings": {"weights": "int4 symmetric per-output-channel (MSE-searched scale)",
                           "reconstruction": "none (round to nearest)",
                           "weights_8bit": [{"node": "stem", "why": "stem conv"}]}}
    assert collapse_verdict(-0.099, record) is None
    verdict = collapse_verdict(-0.2641, record)
    assert verdict == ("lost 26.4 points (int4 symmetric per-output-channel (MSE-searched scale); "
                       "none (round to nearest); 1 conv(s) kept at 8 bits)")
    onnx = tmp_path / "w4a16-graph-mse.onnx"
    onnx.write_bytes(b"x")
    onnx.with_suffix(".scheme.json").write_text(json.dumps(record))
    from quantsweep.ledger import Candidate, Ledger

    ledger = Ledger()
    ledger.add(Candidate("fp32", None, metrics={"map50_95": 0.32}))
    ledger.add(Candidate("w4a16-graph-mse", make_scheme("w4a16-graph-mse"), onnx, metrics={"map50_95": 0.0559}))
    rows = {r.candidate: r for r in summary_rows(ledger)}
    assert rows["w4a16-graph-mse"].collapsed.startswith("lost 26.4 points (int4")
    assert rows["fp32"].collapsed is None
    assert decide(list(rows.values()), 1.0).candidate in (None, "fp32")


def test_a_collapse_names_the_runtime_or_the_quantization():
    from quantsweep.results import blame

    assert blame(None, {"provider": "ONNX Runtime CPU", "delta": -0.008}) is None
    assert blame("lost 50.7 points", None) == "lost 50.7 points"
    runtime = blame("lost 50.7 points", {"provider": "ONNX Runtime CPU", "delta": -0.0082})
    assert "the runtime miscomputes this file" in runtime and "-0.82 points" in runtime
    quantization = blame("lost 26.4 points", {"provider": "ONNX Runtime CPU", "delta": -0.25})
    assert "the quantization loses it" in quantization and "-25.00 points" in quantization


def test_an_emulated_candidate_is_never_the_speed_pick():
    """A runtime that computes the float graph on dequantized values (OpenVINO on an INT4 W4A16 file)
    times it like FP32: a 1.003x ratio is noise, not a reason to deploy it."""
    rows = [_row("fp32", 10.0, 0.0), _row("w4a16", 9.97, -0.001, label="emulated"), _row("int8", 8.0, -0.005)]
    d = decide(rows, 1.0, "ort-cpu")
    assert d.candidate == "int8" and [r.candidate for r in finalists(rows, 1.0, "ort-cpu", 3)] == ["int8"]
