"""Confirmation on held-out images: disjoint pools, adaptive rounds, honest 'undecided'."""

import numpy as np
import pytest

from quantsweep.decide.confirm import Confirmation, confirm_adaptively, confirm_finalists, images_to_settle
from quantsweep.decide.decision import decide, decide_confirmed, finalists
from quantsweep.decide.sequential import judge_look, make_design
from quantsweep.decide.split import MIN_HALF, plan_subsets, stratified_halves
from quantsweep.results import Row


def test_the_pool_follows_the_search_subset_and_never_overlaps_it():
    plan = plan_subsets(range(1, 22), {}, max_images=3, confirm_images=7, confirm_step=3)
    assert plan.mode == "pool" and plan.search == (1, 2, 3)
    assert plan.chunks == ((4, 5, 6), (7, 8, 9), (10,))
    assert plan_subsets(range(1, 22), {}, 3, 0, 3).chunks == ()  # confirmation off
    explicit = plan_subsets(range(1, 12), {}, 3, 7, 3, search_ids=[3, 1, 2])
    assert not {3, 1, 2} & set(explicit.confirm) and len(explicit.confirm) == 7


def test_a_small_dataset_is_split_in_disjoint_halves_that_cover_every_class():
    rng = np.random.default_rng(0)
    ids = list(range(100, 180))
    classes = {i: {int(c) for c in rng.choice(12, size=rng.integers(1, 4), replace=False)} for i in ids}
    plan = plan_subsets(ids, classes, max_images=100, confirm_images=400, confirm_step=100)
    assert plan.mode == "halves" and "split in halves" in plan.note
    search, confirm = set(plan.search), set(plan.confirm)
    assert not search & confirm and search | confirm == set(ids) and abs(len(search) - len(confirm)) <= 1
    counts = {c: sum(c in classes[i] for i in ids) for c in range(12)}
    for c, n in counts.items():
        if n >= 2:
            assert any(c in classes[i] for i in search) and any(c in classes[i] for i in confirm), c
    assert stratified_halves(ids, classes) == (sorted(search), sorted(confirm))  # deterministic
    few = plan_subsets(range(2 * MIN_HALF - 1), {}, 100, 400, 100)
    assert few.mode == "none" and not few.chunks and f"at least {2 * MIN_HALF}" in few.note


def test_design_boundaries_spend_alpha_over_looks_and_finalists():
    one = make_design(0.05, (100,), 1)
    assert one.critical[0] == pytest.approx(1.6449, abs=1e-3)
    obf = make_design(0.05, (100, 200, 300, 400), 3)
    assert obf.critical[0] > obf.critical[-1] > one.critical[0]  # conservative early; Bonferroni over 3
    pocock = make_design(0.05, (100, 200, 300, 400), 3, "pocock")
    assert max(pocock.critical) - min(pocock.critical) < 0.05
    assert "α=0.05" in obf.rule() and "÷3 finalists" in obf.rule() and obf.to_dict()["looks"] == (100, 200, 300, 400)
    with pytest.raises(ValueError):
        make_design(0.05, (200, 100), 1)
    assert judge_look(one, 0, -0.004, 0.003, 1.0).verdict == "pass"  # z = 2.0
    assert judge_look(one, 0, -0.025, 0.003, 1.0).verdict == "fail"
    assert judge_look(one, 0, -0.009, 0.003, 1.0).verdict == "undecided"
    assert images_to_settle(100, -0.006, 0.002, 1.0, 2.0) == 100  # 4 points of SE... 2 x 0.2 / 0.4 = 1


def _synthetic(mu, sigma=0.03, n=400, seed=0):
    """A finalist whose per-image paired differences are N(mu, sigma): its true Δ is mu."""
    d = np.random.default_rng(seed).normal(mu, sigma, n)

    def score(ids):
        x = d[np.asarray(ids)]
        se = x.std(ddof=1) / np.sqrt(len(x))
        return float(x.mean()), float(x.mean() - 1.96 * se), float(x.mean() + 1.96 * se), float(se)

    return score


@pytest.mark.parametrize("spending", ["obf", "pocock"])
def test_a_true_loss_just_beyond_the_budget_passes_at_most_alpha_of_the_time(spending):
    chunks = [list(range(k, k + 100)) for k in range(0, 400, 100)]
    design = make_design(0.05, (100, 200, 300, 400), 3, spending)
    beyond = just_inside = 0
    runs = 1500
    for seed in range(runs):
        scores = {f"f{j}": _synthetic(-0.0101, seed=3 * seed + j) for j in range(3)}  # all three 0.01 beyond
        picks = confirm_finalists(list(scores), chunks, lambda name, ids, s=scores: s[name](ids), 1.0, design)
        beyond += any(c.verdict == "pass" for c in picks)
        good = confirm_adaptively("g", chunks, _synthetic(-0.004, seed=seed), 1.0, design)
        just_inside += good.verdict == "pass"
    assert beyond / runs <= 0.05 + 2 * (0.05 * 0.95 / runs) ** 0.5  # the family-wise error rate holds
    assert just_inside / runs > 0.8  # and a model 0.6 points inside the budget is confirmed most of the time


def test_the_fixed_sequence_tests_each_finalist_at_the_full_alpha_and_stops_at_the_first_non_pass():
    looks = (100, 200, 300, 400)
    seq = make_design(0.04, looks, 3, finalist_rule="fixed-sequence")
    bonf = make_design(0.04, looks, 3)
    assert seq.alpha_each == 0.04 and bonf.alpha_each == pytest.approx(0.04 / 3)
    assert seq.critical == make_design(0.04, looks, 1).critical  # the full α: a single finalist's boundaries
    assert all(s < b for s, b in zip(seq.critical, bonf.critical)) and "fixed order" in seq.rule()
    with pytest.raises(ValueError, match="finalist rule"):
        make_design(0.04, looks, 3, finalist_rule="holm")
    chunks = [list(range(k, k + 100)) for k in range(0, 400, 100)]
    tested = []
    shift = {"safe": -0.001, "doubtful": -0.0095, "never": -0.002}

    def score(name, ids):
        tested.append(name)
        return _synthetic(shift[name], sigma=0.01, seed=len(name))(ids)

    out = confirm_finalists(["safe", "doubtful", "never"], chunks, score, 1.0, seq)
    assert [c.candidate for c in out] == ["safe", "doubtful"] and out[0].verdict == "pass"
    assert out[1].verdict != "pass" and "never" not in tested  # stopped at the first that did not pass
    both = confirm_finalists(["safe", "never"], chunks, score, 1.0, seq)
    assert [c.verdict for c in both] == ["pass", "pass"]  # a pass goes on to the next finalist


def test_under_the_fixed_sequence_the_pick_is_the_fastest_finalist_that_passed():
    rows = [_row("fp32", 10.0, 0.0), _row("fast", 5.0, -0.004), _row("slow", 8.0, -0.001)]
    safest_first = [Confirmation("slow", 100, -0.001, -0.004, 0.002, "pass", bound=-0.003).to_dict(),
                    Confirmation("fast", 300, -0.003, -0.007, 0.001, "pass", bound=-0.008).to_dict()]
    d = decide_confirmed(rows, safest_first, 1.0, "openvino")
    assert d.candidate == "fast" and d.status == "deploy"


def test_adaptive_confirmation_stops_as_soon_as_it_is_decided_and_records_each_look():
    scored = []

    def score(ids):  # the standard error shrinks as images are added: decided at the second look
        scored.append(len(ids))
        se = 0.004 * (100 / len(ids)) ** 0.5
        return -0.004, -0.004 - 2 * se, -0.004 + 2 * se, se

    design = make_design(0.05, (100, 200, 300), 1, "pocock")
    c = confirm_adaptively("a", [list(range(100)), list(range(100, 200)), list(range(200, 300))], score, 1.0, design)
    assert c.verdict == "pass" and c.images == 200 and scored == [100, 200]
    assert [look["verdict"] for look in c.looks] == ["undecided", "pass"] and c.bound >= -0.01


def test_adaptive_confirmation_says_undecided_when_the_pool_runs_out():
    design = make_design(0.05, (2, 4), 1)
    c = confirm_adaptively("a", [[1, 2], [3, 4]], lambda ids: (-0.008, -0.014, -0.002, 0.003), 1.0, design)
    assert c.verdict == "undecided" and c.images == 4 and c.needed and c.needed > 4
    assert f"undecided at 4 images; these images confirm it within 1.30 points; about {c.needed} labelled " \
           "images would decide the 1.00-point budget" in c.text(1.0)
    with pytest.raises(ValueError):
        confirm_adaptively("a", [], lambda ids: (0.0, 0.0, 0.0, 0.0), 1.0, design)
    with pytest.raises(ValueError, match="design's looks"):
        confirm_adaptively("a", [[1, 2, 3]], lambda ids: (0.0, 0.0, 0.0, 0.0), 1.0, design)


def _row(name, p50, delta, backend="openvino", **kw):
    return Row(candidate=name, scheme="s", precision="int8", backend=backend, latency_p50_ms=p50,
               delta_map50_95=delta, delta_ci95_low=delta - 0.01, delta_ci95_high=delta + 0.01,
               speedup_vs_fp32=10.0 / p50, label="accelerated", **kw)


def test_finalists_are_the_fastest_within_the_budget_on_the_search_subset():
    rows = [_row("fp32", 10.0, 0.0), _row("fast-bad", 5.0, -0.02), _row("a", 6.0, -0.004), _row("b", 7.0, -0.009),
            _row("slow", 11.0, 0.0), _row("abl", 4.0, 0.0, ablation=True), _row("a", 3.0, -0.004, backend="ort-cpu")]
    assert [r.candidate for r in finalists(rows, 1.0, "openvino", 3)] == ["a", "b"]
    assert [r.candidate for r in finalists(rows, 1.0, "openvino", 1)] == ["a"]


def test_the_recommendation_is_the_fastest_confirmed_finalist():
    rows = [_row("fp32", 10.0, 0.0), _row("a", 6.0, -0.004), _row("b", 7.0, -0.003)]
    confirmations = [Confirmation("a", 400, -0.009, -0.014, -0.004, "fail").to_dict(),
                     Confirmation("b", 200, -0.002, -0.006, 0.002, "pass").to_dict()]
    d = decide_confirmed(rows, confirmations, 1.0, "openvino")
    assert d.candidate == "b" and d.confirmed["images"] == 200 and d.status == "deploy"
    assert "Δ -0.20 [-0.60, +0.20] points on 200 confirmation images" in d.reason and "search subset: -0.30" in d.reason
    d = decide_confirmed(rows, confirmations[:1], 1.0, "openvino")
    assert d.candidate == "fp32" and d.status == "fp32" and "misses the 1.00-point budget" in d.reason
    assert [r.candidate for r in d.mark(rows) if r.recommended] == ["fp32"]


def test_an_unconfirmed_pick_is_never_headlined_deploy(tmp_path):
    from quantsweep.report.terminal import terminal_summary

    rows = [_row("fp32", 10.0, 0.0), _row("a", 6.0, 0.002)]  # search-subset interval within the budget
    undecided = [Confirmation("a", 40, -0.009, -0.014, -0.004, "undecided", 900).to_dict()]
    for d in (decide_confirmed(rows, undecided, 1.0, "openvino"),  # the pool could not settle it
              decide(rows, 1.0, "openvino", note="only 30 labelled evaluation images")):  # no pool at all
        assert d.candidate == "a" and d.status == "unconfirmed" and d.note
        marked = d.mark(rows)
        summary = {"rows": [r.to_dict() for r in marked], "recommendation": d.to_dict(), "budget_points": 1.0}
        text = terminal_summary(summary, tmp_path)
        first = text.splitlines()[0]
        assert first.startswith("BEST CANDIDATE, NOT CONFIRMED: a on openvino") and "DEPLOY" not in text
        assert "why not confirmed:" in text.splitlines()[1]


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino"])
def test_the_recommended_folder_holds_the_model_and_a_command_that_runs_it(tmp_path, backend):
    import re
    import shutil
    import subprocess
    import sys

    from tests.conftest import tiny_convnet

    from quantsweep.decide.decision import Decision
    from quantsweep.deploy.recommended import hand_back

    if backend == "openvino":
        pytest.importorskip("openvino")
    (tmp_path / "candidates").mkdir()
    tiny_convnet(tmp_path / "candidates" / "int8-x.onnx")
    (tmp_path / "candidates" / "int8-x.scheme.json").write_text("{}")
    rows = [_row("int8-x", 5.0, -0.002, backend=backend)]
    hand_back(tmp_path, Decision("int8-x", backend, "because"), rows)
    out = tmp_path / "recommended"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "int8-x.onnx", "int8-x.scheme.json"]
    command = re.search(r'python -c "(.*)"', (out / "README.md").read_text()).group(1)
    done = subprocess.run([sys.executable, "-c", command], cwd=out, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1000:]
    hand_back(tmp_path / "none", Decision("fp32", backend, "stay"), rows)  # nothing to hand back
    assert not (tmp_path / "none" / "recommended").exists()
    shutil.rmtree(out)


def test_a_finalist_that_cannot_be_scored_is_a_verdict_not_the_answer():
    rows = [_row("fp32", 10.0, 0.0), _row("a", 6.0, -0.004)]
    broken = Confirmation("a", 0, 0.0, 0.0, 0.0, "error", error="evaluation failed: disk full").to_dict()
    assert "could not be scored on the confirmation images (evaluation failed: disk full)" in \
        Confirmation.from_dict(broken).text(1.0)
    d = decide_confirmed(rows, [broken], 1.0, "openvino")
    assert d.candidate == "fp32" and "disk full" in d.reason


def test_the_four_bit_size_picks_are_confirmed_smallest_first_against_their_own_budget(tmp_path):
    """The size search's picks face the held-out images too: each family's its own verdict, smallest file
    first, the 4-bit budget (not the speed pick's), their own design; a pick the search did not make (or
    whose build failed) is not re-scored."""
    import json

    from quantsweep.ledger import Candidate, Ledger
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.stage_decide import confirm_size

    (tmp_path / "small.onnx").write_bytes(b"0" * 10)
    (tmp_path / "large.onnx").write_bytes(b"0" * 20)
    (tmp_path / "search.json").write_text(json.dumps({"four_bit": {"placements": [
        {"placement": "w4a8-graph-gptq", "best": "large"}, {"placement": "w4a16-graph-gptq", "best": "small"},
        {"placement": "other", "best": None}]}}))
    built = Ledger()
    for name in ("small", "large"):
        built.add(Candidate(name, None, tmp_path / f"{name}.onnx"))
    chunks = [[1, 2], [3, 4]]
    seen: list[tuple[str, int]] = []

    def score(name, ids):  # the small file loses 1.5 points (sharp), the large one 0.2
        seen.append((name, len(ids)))
        delta = -0.015 if name == "small" else -0.002
        return delta, delta - 0.001, delta + 0.001, 0.0005

    cfg = SweepConfig(w4_budget=2.0)
    out = confirm_size(tmp_path, cfg, built, chunks, (score, None))
    assert out["finalists"] == ["small", "large"] and out["budget_points"] == 2.0
    # W4A16 and W4A8 are different deployments: a pass of the smaller file does not stop the other's verdict
    assert [(c["candidate"], c["verdict"]) for c in out["results"]] == [("small", "pass"), ("large", "pass")]
    assert out["design"]["finalists"] == 2  # the α is split over both
    strict = confirm_size(tmp_path, SweepConfig(w4_budget=1.0), built, chunks, (score, None))
    assert [c["verdict"] for c in strict["results"]] == ["fail", "pass"]  # -1.5 misses a 1.0 budget; -0.2 keeps it
    # a pick its target could not score (scored on ONNX Runtime CPU instead) is paired with FP32 on that CPU too
    built.add(Candidate("fp32", None, metrics={"run": {"provider": "OpenVINO CPU"}}))
    built["small"].metrics = {"run": {"provider": "CPUExecutionProvider"}}
    on_cpu: list[str] = []

    def score_cpu(name, ids):
        on_cpu.append(name)
        return -0.001, -0.002, 0.0, 0.0005

    confirm_size(tmp_path, cfg, built, chunks, (score, score_cpu))
    assert on_cpu == ["small"]
    built["large"].fail("build failed")
    assert confirm_size(tmp_path, cfg, built, chunks, (score, None))["finalists"] == ["small"]


def test_each_four_bit_pick_is_judged_against_its_family_s_budget(tmp_path):
    """W4A8 carries int8 activations on top of its 4-bit weights: the search records its own budget
    (--w4a8-budget) on its placement, and the held-out verdict uses it."""
    import json

    from quantsweep.ledger import Candidate, Ledger
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.stage_decide import confirm_size

    (tmp_path / "w4a8.onnx").write_bytes(b"0" * 10)
    (tmp_path / "search.json").write_text(json.dumps({"four_bit": {"placements": [
        {"placement": "w4a8-graph-gptq", "best": "w4a8", "budget_points": 3.5}]}}))
    built = Ledger()
    built.add(Candidate("w4a8", None, tmp_path / "w4a8.onnx"))

    def score(name, ids):  # loses 2.5 points, sharply measured
        return -0.025, -0.026, -0.024, 0.0005

    out = confirm_size(tmp_path, SweepConfig(w4_budget=2.0, w4a8_budget=3.5), built, [[1, 2], [3, 4]], (score, None))
    assert out["results"][0]["verdict"] == "pass" and out["results"][0]["budget_points"] == 3.5
    assert out["w4a8_budget_points"] == 3.5 and out["budget_points"] == 2.0


def test_the_printed_bound_is_the_tested_one_and_an_undecided_verdict_says_what_the_images_confirm():
    """A user read "undecided" next to a 95 % interval inside the budget: the line now shows Δ − c·SE and z."""
    from quantsweep.results import confirms_within, tested

    design = make_design(0.04, (39,), 1)
    c = confirm_adaptively("int8-ov-k1", [list(range(39))], lambda ids: (-0.0051, -0.0100, 0.0100, 0.0056), 1.0,
                           design)
    d = c.to_dict()
    assert c.verdict == "undecided"
    assert d["bound"] == pytest.approx(-0.0051 - design.critical[0] * 0.0056, abs=1e-6)
    line = tested(d, 1.0)
    assert f"tested bound {100 * d['bound']:+.2f} < -1.00" in line and f"z {(-0.0051 + 0.01) / 0.0056:.2f} <" in line
    assert "descriptive 95 % [-1.00, +1.00]" in line
    text = c.text(1.0)
    assert f"confirm it within {confirms_within(d):.2f} points" in text and "labelled images would decide" in text
    passed = confirm_adaptively("a", [list(range(39))], lambda ids: (-0.001, -0.004, 0.002, 0.001), 1.0, design)
    assert "≥ -1.00" in tested(passed.to_dict(), 1.0) and passed.verdict == "pass"


def test_a_run_s_verdicts_share_one_alpha_and_the_speed_share_does_not_depend_on_the_size_verdicts():
    from quantsweep.decide.sequential import SPEED_SHARE, alpha_split

    alone, with_size = alpha_split(0.05), alpha_split(0.05, 2)
    assert alone["speed"] == with_size["speed"] == pytest.approx(SPEED_SHARE * 0.05)
    assert with_size["speed"] + with_size["size"] <= 0.05 + 1e-12
    assert with_size["size_each"] * 2 == pytest.approx(with_size["size"])
