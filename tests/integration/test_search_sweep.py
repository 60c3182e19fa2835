"""The sweep's K search end to end on the demo: probes as measured steps, resume mid-search, the IR
search on OpenVINO, the 4-bit size search and the default run without it."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.sweeps import check_report_renders, start_until

from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.runner import run_sweep

pytestmark = pytest.mark.slow  # full sweeps: tens of seconds each

# the search (the default): one K-capable placement whose K=0 misses a tight budget, so K is searched
SEARCH = dict(schemes=("int8-qdq",), max_images=20, calib_count=8, bench_seconds=0.3, bootstrap=200, profile_runs=10,
              sensitivity_images=1, sensitivity_probe_top=8, backends=("ort-cpu",), confirm_images=40, confirm_step=20, finalists=2,
              budget=0.5, max_evals=4, ablation=False)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    return run_sweep(SweepConfig(out=tmp_path_factory.mktemp("search"), **SEARCH))


def _trace(run_dir, timings=False):
    keep = ("placement", "candidate", "k", "kept_float", "delta", "low", "high", "expected_low", "qualifies")
    keep += ("latency_ms", "speedup_vs_fp32", "label") if timings else ()
    return [tuple(str(t[k]) for k in keep) for t in json.loads((Path(run_dir) / "search.json").read_text())["trace"]]


def test_search_probes_are_measured_steps_and_the_smallest_qualifier_wins(search_run):
    d = search_run.run_dir
    s = json.loads((d / "search.json").read_text())
    ranking = [n["node"] for n in json.loads((d / "sensitivity.json").read_text())["int8-qdq"]["ranking"]]
    assert s["target"] == "ort-cpu" and s["search_images"] == 20 and s["confirm_pool"] == 40
    trace = s["trace"]
    assert trace[0]["k"] == 0 and not trace[0]["qualifies"]  # a 0.5-point budget: K=0 misses on this model
    assert 1 <= s["evaluations"] == len(trace) - 1 <= SEARCH["max_evals"]
    steps = json.loads((d / "manifest.json").read_text())["steps"]
    for t in trace[1:]:  # each probe: built, scored on the search subset, timed on the target with FP32
        name = t["candidate"]
        assert t["kept_float"] == ranking[:t["k"]]
        for step in (f"build:{name}", f"eval:{name}", f"bench:ort-cpu:{name}"):
            assert steps[step]["state"] == "done", step
        assert t["speedup_vs_fp32"] > 0 and t["label"] == "accelerated" and t["seconds"] > 0
        expected = t["delta"] - s["shrink"] * (t["delta"] - t["low"])
        assert t["qualifies"] == (expected >= -SEARCH["budget"] / 100 - 1e-12)
    item = s["placements"][0]
    hits = [t["k"] for t in trace if t["qualifies"]]
    # the best is the smallest K that qualified; with none, none
    assert item.get("best") == (next(t["candidate"] for t in trace if t["k"] == min(hits)) if hits else None), item
    rows = {r.candidate for r in search_run.rows}
    assert {t["candidate"] for t in trace} <= rows  # every probe is a row of the table
    assert 'id="search"' in (d / "report.html").read_text()


@pytest.mark.slow
def test_sigkill_mid_search_then_resume_replays_the_same_trace_and_decision(search_run, tmp_path):
    second = next(t["candidate"] for t in json.loads((search_run.run_dir / "search.json").read_text())["trace"][2:3])
    proc, run_dir = start_until(search_run, tmp_path, f"eval:{second}", start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "search.json").exists()
    resume = [sys.executable, "-m", "quantsweep", "run", "--resume", str(run_dir), "--quiet"]
    done = subprocess.run(resume, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _trace(run_dir) == _trace(search_run.run_dir)  # same probes, same measured accuracy
    first = (_trace(run_dir, timings=True), (run_dir / "results" / "summary.json").read_text())
    again = subprocess.run(resume, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (_trace(run_dir, timings=True), (run_dir / "results" / "summary.json").read_text()) == first


def test_openvino_search_builds_ir_candidates_ranked_on_their_onnx_twin(tmp_path, monkeypatch):
    """int8-ov ships as OpenVINO IR: K probes are IRs whose ranked nodes OpenVINO runs in float,
    ranked on the QDQ ONNX twin (ONNX Runtime cannot load an IR), scored and timed by OpenVINO.

    A speed search needs a K=0 measurably faster than FP32, which int8-ov is not on every CPU (on AMX,
    OpenVINO runs FP32 in bf16 faster than this INT8): the test declares every accelerated candidate
    faster, so the search path runs on any machine; its timing is still measured and recorded."""
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    import quantsweep.decide.decision as decision

    monkeypatch.setattr(decision, "faster_than_fp32", lambda row, fp32=None: row.label == "accelerated")
    cfg = SweepConfig(out=tmp_path, **{**SEARCH, "schemes": ("int8-ov",), "backends": ("openvino",),
                                       "budget": 0.01, "max_evals": 2})
    d = run_sweep(cfg).run_dir
    from quantsweep.model.graph import ir_graph_facts

    assert [p["placement"] for p in json.loads((d / "search.json").read_text())["placements"]] == ["int8-ov"]
    sens = json.loads((d / "sensitivity.json").read_text())["int8-ov"]
    assert "twin" in sens["ranked_on"] and sens["qdq_model_scheme"]["format"] == "onnx"
    trace = json.loads((d / "search.json").read_text())["trace"]
    assert trace[0]["candidate"] == "int8-ov" and len(trace) >= 2, trace
    for t in trace:
        xml = d / "candidates" / f"{t['candidate']}.xml"
        assert xml.is_file() and xml.with_suffix(".bin").is_file()
        assert not (d / "candidates" / f"{t['candidate']}.onnx").exists()
        floating = set(ir_graph_facts(xml)["float_compute_nodes"])
        assert set(t["kept_float"]) <= floating and len(t["kept_float"]) == t["k"]
        assert t["label"] == "accelerated"
        metrics = json.loads((d / "results" / f"{t['candidate']}.metrics.json").read_text())
        assert metrics["run"]["provider"].startswith("OpenVINO")
    record = json.loads((d / "candidates" / "int8-ov.scheme.json").read_text())
    assert record["format"] == "openvino-ir" and record["settings"]["ignored_scope"]  # the DFL conv at least


@pytest.mark.slow
def test_the_search_run_s_report_renders_in_headless_chromium(search_run, tmp_path):
    check_report_renders(search_run.run_dir, tmp_path)


def test_four_bit_candidates_are_searched_for_the_fewest_8bit_convs_within_their_own_budget(tmp_path):
    """--w4-budget 0: no 4-bit probe qualifies on 20 images, so the search probes K > 0 (convs kept at
    8 bits by the measured ranking) up to the cap; each probe's 8-bit set is the ranking's head, recorded."""
    cfg = SweepConfig(out=tmp_path, **{**SEARCH, "schemes": ("w4a16-graph-gptq-asym",), "w4_budget": 0.0, "max_evals": 1,
                                       "size": True})
    d = run_sweep(cfg).run_dir
    four = json.loads((d / "search.json").read_text())["four_bit"]
    assert four["budget_points"] == 0.0 and [p["placement"] for p in four["placements"]] == ["w4a16-graph-gptq-asym"]
    trace = four["trace"]
    assert trace[0]["k"] == 0 and four["evaluations"] == len(trace) - 1 == 1, trace
    ranking = [n["node"] for n in json.loads((d / "sensitivity.json").read_text())["w4a16-graph-gptq-asym"]["ranking"]]
    for t in trace[1:]:
        record = json.loads((d / "candidates" / f"{t['candidate']}.scheme.json").read_text())
        eight = {e["node"] for e in record["settings"]["weights_8bit"] if e["why"].startswith("sensitivity rank")}
        assert eight == set(ranking[:t["k"]]) == set(t["kept_float"]), t  # the searched 8-bit convs, recorded
        assert record["settings"]["storage"].startswith("UINT4")
    assert "Four-bit candidates (for size)" in (d / "report.html").read_text()


def test_the_default_run_builds_no_four_bit_probe_and_says_how_to_ask(tmp_path):
    """Without --size (and with a 4-bit budget nothing meets) the 4-bit K=0 candidate is built, scored and
    in the table, but no 4-bit K>0 probe, ranking or size verdict is made; the report and cost say so."""
    cfg = SweepConfig(out=tmp_path, **{**SEARCH, "schemes": ("w4a16-graph-gptq-asym",), "w4_budget": 0.0,
                                       "max_evals": 1})
    result = run_sweep(cfg)
    d = result.run_dir
    four = json.loads((d / "search.json").read_text())["four_bit"]
    assert four["placements"] == [] and four["evaluations"] == 0 and "--size" in four["how"], four
    steps = json.loads((d / "manifest.json").read_text())["steps"]
    assert "build:w4a16-graph-gptq-asym" in steps
    assert not [s for s in steps if s.startswith(("build:w4a16-graph-gptq-asym-k", "sensitivity:w4a16"))], steps
    assert "sensitivity.json" not in {p.name for p in d.iterdir()}
    assert (json.loads((d / "confirmation.json").read_text()).get("four_bit")) is None
    assert "w4a16-graph-gptq-asym" in {r.candidate for r in result.rows}
    html = (d / "report.html").read_text()
    assert "Four-bit candidates (for size): not searched" in html and 'id="cost"' in html
    cost = json.loads((d / "cost.json").read_text())
    stages = {s["stage"]: s for s in cost["stages"]}
    assert stages["4-bit size search"]["steps"] == 0 and stages["build"]["steps"] == 1
    assert cost["invocations"][-1]["wall_s"] == result.wall_s > 0
    assert result.wall_s >= cost["steps_s"]  # a fresh run's wall holds every step
