"""Confirmation on held-out images: disjoint pools, adaptive rounds, honest 'undecided'."""

import pytest

from quantsweep.evaluate.confirm import Confirmation, confirm_adaptively, images_to_settle, judge, split_pool
from quantsweep.report.decision import decide_confirmed, finalists
from quantsweep.report.table import Row


def test_the_pool_follows_the_search_subset_and_never_overlaps_it():
    search = [3, 1, 2]
    chunks = split_pool(range(1, 12), search, size=7, step=3)
    assert chunks == [[4, 5, 6], [7, 8, 9], [10]]
    assert not set(search) & {i for c in chunks for i in c}
    assert split_pool(range(1, 12), search, size=0, step=3) == []  # confirmation off


def test_judge_and_settling_estimate():
    assert judge(-0.009, 0.004, 1.0) == "pass" and judge(-0.03, -0.011, 1.0) == "fail"
    assert judge(-0.013, -0.004, 1.0) == "undecided"
    # point -0.6, half-width 0.5 points at 100 images: the line is 0.4 points away -> ~157 images
    assert images_to_settle(100, -0.006, -0.011, -0.001, 1.0) == 157
    assert images_to_settle(100, -0.010, -0.015, -0.005, 1.0) is None  # exactly on the line


def test_adaptive_confirmation_stops_as_soon_as_it_is_decided():
    scored = []

    def score(ids):  # the interval narrows as images are added: decided after the second chunk
        scored.append(len(ids))
        half = 0.008 * (100 / len(ids)) ** 0.5
        return -0.004, -0.004 - half, -0.004 + half

    c = confirm_adaptively("a", [list(range(100)), list(range(100, 200)), list(range(200, 300))], score, 1.0)
    assert c.verdict == "pass" and c.images == 200 and scored == [100, 200]


def test_adaptive_confirmation_says_undecided_when_the_pool_runs_out():
    c = confirm_adaptively("a", [[1, 2], [3, 4]], lambda ids: (-0.008, -0.014, -0.002), 1.0)
    assert c.verdict == "undecided" and c.images == 4 and c.needed == 4 * 9
    assert "undecided at 4 images; about 36 would settle it" in c.text(1.0)
    with pytest.raises(ValueError):
        confirm_adaptively("a", [], lambda ids: (0.0, 0.0, 0.0), 1.0)


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
    confirmations = [Confirmation("a", 400, -0.009, -0.014, -0.004, "undecided", 900).to_dict(),
                     Confirmation("b", 200, -0.002, -0.006, 0.002, "pass").to_dict()]
    d = decide_confirmed(rows, confirmations, 1.0, "openvino")
    assert d.candidate == "b" and d.confirmed["images"] == 200
    assert "-0.20 points [-0.60, +0.20] on 200 confirmation images" in d.reason and "search subset: -0.30" in d.reason
    d = decide_confirmed(rows, confirmations[:1], 1.0, "openvino")
    assert d.candidate == "fp32" and "undecided at 400 images; about 900 would settle it" in d.reason
    assert [r.candidate for r in d.mark(rows) if r.recommended] == ["fp32"]


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino"])
def test_the_recommended_folder_holds_the_model_and_a_command_that_runs_it(tmp_path, backend):
    import re
    import shutil
    import subprocess
    import sys

    from tests.conftest import tiny_convnet

    from quantsweep.report.decision import Decision
    from quantsweep.report.write import hand_back

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
