"""What a run cost, by stage: every manifest step lands in one stage, and the 4-bit size search is its own."""

from __future__ import annotations

import pytest

from quantsweep.report.cost import STAGES, by_stage, cost_line, stage_of

SEARCH = {"trace": [{"candidate": "int8-ov", "k": 0}, {"candidate": "int8-ov-k4", "k": 4}],
          "placements": [{"placement": "int8-ov", "hedge": {"candidate": "int8-ov-k9", "k": 9}}],
          "four_bit": {"trace": [{"candidate": "w4a16-k0", "k": 0}, {"candidate": "w4a16-k6", "k": 6}],
                       "placements": [{"placement": "w4a16", "stopped": "smallest qualifying K found"}]}}


@pytest.mark.parametrize("step, stage", [
    ("baseline", "export"), ("target", "benchmark"), ("bench:openvino", "benchmark"),
    ("build:int8-ov", "build"), ("eval:int8-ov", "evaluate"), ("eval-ref:int8-ov", "evaluate"),
    ("sensitivity:int8-ov", "rank"), ("build:int8-ov-k4", "search probes"), ("eval:int8-ov-k9", "search probes"),
    ("bench:openvino:int8-ov-k4", "search probes"), ("confirm:int8-ov:0", "confirmation"),
    ("confirm-cpu:fp32:2", "confirmation"), ("sensitivity:w4a16", "4-bit size search"),
    ("build:w4a16-k6", "4-bit size search"), ("eval:w4a16-k6", "4-bit size search"),
    ("build:w4a16-k0", "build"), ("profile:int8-ov:openvino", "profile"), ("report", "report")])
def test_every_step_has_its_stage(step, stage):
    assert stage_of(step, {"int8-ov-k4", "int8-ov-k9"}, {"w4a16-k6"}, {"w4a16"}) == stage


def test_stages_sum_the_steps_and_keep_their_order():
    steps = {"baseline": {"seconds": 1.0, "peak_rss_mb_so_far": 900.0}, "build:int8-ov": {"seconds": 10.0},
             "build:int8-ov-k4": {"seconds": 12.0}, "sensitivity:w4a16": {"seconds": 30.0},
             "build:w4a16-k6": {"seconds": 20.0, "peak_rss_mb_so_far": 2000.0}, "eval:w4a16-k6": {"seconds": 2.5},
             "report": {"seconds": 3.0}}
    cost = by_stage(steps, SEARCH)
    assert [s["stage"] for s in cost["stages"]] == list(STAGES)
    got = {s["stage"]: (s["seconds"], s["steps"]) for s in cost["stages"]}
    assert got["4-bit size search"] == (52.5, 3) and got["search probes"] == (12.0, 1) and got["build"] == (10.0, 1)
    assert cost["steps_s"] == pytest.approx(78.5)
    assert {s["stage"]: s["peak_rss_mb"] for s in cost["stages"]}["4-bit size search"] == 2000.0
    line = cost_line(cost, 80.4, "2 cores, avx512_vnni")
    assert line.startswith("cost: 80 s wall — steps by stage:") and line.endswith("— on 2 cores, avx512_vnni")
    assert "4-bit size search 52 s" in line
    assert "rank" not in line  # a stage that took nothing is not printed
    cut = cost_line(cost, 80.4, "2 cores, avx512_vnni", width=60)
    assert len(cut) == 60 and cut.endswith("…") and line.startswith(cut[:-1])
