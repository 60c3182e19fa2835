"""The sweep end to end on the demo: run folder, table, report, failure rows, lock, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import copy_run_until
from tests.integration.sweeps import check_report_renders, start_until

from quantsweep.errors import QuantsweepError
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.runner import open_run, run_sweep

pytestmark = pytest.mark.slow  # full sweeps: tens of seconds each

SMALL = dict(grid=True, schemes=("int8-qdq", "w8a16"), ks=(0, 3), max_images=20, calib_count=8, bench_seconds=0.3,
             profile_runs=10,
             bootstrap=200, sensitivity_images=1, sensitivity_probe_top=4, backends=("ort-cpu",), confirm_images=40, confirm_step=20,
             finalists=2)
EXPECTED = ["config.yaml", "env.json", "manifest.json", "search_ids.txt", "confirm_ids.txt", "calib_ids.txt",
            "confirmation.json", "sensitivity.json",
            "candidates/fp32.onnx", "candidates/int8-qdq.onnx", "candidates/int8-qdq.scheme.json",
            "candidates/int8-qdq-k3.onnx", "candidates/w8a16.onnx", "candidates/logs/int8-qdq.log",
            "results/int8-qdq.metrics.json", "results/int8-qdq.ort-cpu.bench.json", "results/summary.csv",
            "results/summary.md", "results/summary.json", "results/pareto.png", "results/k_curve.png",
            "results/pareto.svg", "results/k_curve.svg",
            "report.html"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return run_sweep(SweepConfig(out=out, **SMALL))


def test_run_folder_has_everything(small_run):
    for rel in EXPECTED:
        assert (small_run.run_dir / rel).exists(), rel
    summary = json.loads((small_run.run_dir / "results" / "summary.json").read_text())
    names = {r["candidate"] for r in summary["rows"]}
    assert names == {"fp32", "int8-qdq", "int8-qdq-k3", "w8a16", "int8-qdq-nohead"}
    for r in summary["rows"]:
        assert r["error"] is None, r
        assert r["delta_ci95_low"] <= r["delta_map50_95"] + 1e-9 <= r["delta_ci95_high"] + 2e-9
    assert sum(r["recommended"] for r in summary["rows"]) == 1
    assert summary["w8a16"]["ok"] is True
    readme = small_run.run_dir / "recommended" / "README.md"
    if summary["recommendation"]["candidate"] != "fp32":  # the pick is run on a real confirmation image
        text = readme.read_text()
        assert "quantsweep predict --model" in text and ".jpg" in text and "decode_one(run(x)[0]" in text
    else:
        assert not readme.exists()
    md = (small_run.run_dir / "results" / "summary.md").read_text()
    assert "map50_95 ↑" in md and "latency_p50_ms ↓" in md


def test_the_report_shows_what_changed_per_class_per_size_and_in_a_gallery(small_run):
    d = small_run.run_dir
    summary = json.loads((d / "results" / "summary.json").read_text())
    changes = json.loads((d / "results" / "changes.json").read_text())
    rec = summary["recommendation"]
    subject = rec["candidate"] if rec["candidate"] != "fp32" else rec["closest"]
    assert subject in summary["changes"] and list(changes["candidates"])[0] == subject
    c = summary["changes"][subject]
    assert c["images"] in ("confirmation", "search") and c["num_images"] in (20, 40)
    classes = c["classes"]
    judged = [r["delta"] for r in classes if r["ci95"] is not None]  # classes with an interval first, by Δ
    assert judged and judged == sorted(judged) and classes[:len(judged)] == [r for r in classes if r["ci95"] is not None]
    assert len(classes) == 5
    assert all(r["boxes"] > 0 and (r["ci95"] is None or r["ci95"][0] <= r["delta"] + 1e-9 <= r["ci95"][1] + 1e-9)
               for r in classes)
    assert set(c["sizes"]) == {"small", "medium", "large"}
    assert (d / "results" / "class_damage.png").is_file() and (d / "results" / "class_damage.svg").is_file()
    pairs = changes["gallery"]["pairs"]
    assert len(pairs) == 12 and all((d / "results" / p["file"]).is_file() for p in pairs)
    verdicts = [p["verdict"] for p in pairs]
    order = {"worse": 0, "different": 1, "better": 2, "same": 3}
    shown_first = [v for v in verdicts if v != "better"]
    assert [order[v] for v in shown_first] == sorted(order[v] for v in shown_first)  # most changed first
    page = (d / "report.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 12 and 'href="results/gallery/' in page
    assert "What changed" in page and "Gallery" in page


def test_the_run_profiles_fp32_and_its_finalists_and_the_report_says_where_the_time_goes(small_run):
    d = small_run.run_dir
    confirmation = json.loads((d / "confirmation.json").read_text())
    for name in ["fp32", *confirmation["finalists"]]:
        p = json.loads((d / "results" / f"profile.{name}.ort-cpu.json").read_text())
        assert p["runs"] == SMALL["profile_runs"] and p["nodes"] > 20 and p["total_ms"] > 0 and p["latency_p50_ms"] > 0
        assert sum(p["by_precision"].values()) == pytest.approx(p["total_ms"], abs=1e-3)
    page = (d / "report.html").read_text()
    section = page[page.index("<h2>Where the time goes</h2>"):page.index("<h2>W8A16 sanity check</h2>")]
    assert "against FP32, node time by the runtime counters: convolutions" in section
    assert 'alt="node time by operator"' in section and (d / "results" / "profile.png").is_file()
    from quantsweep.report.cost import read_cost

    stages = {s["stage"]: s for s in read_cost(d)["stages"]}  # the cost line counts the profiles' seconds
    assert stages["profile"]["seconds"] > 0 and stages["profile"]["steps"] - len(confirmation["finalists"]) in (1, 2)


def test_run_folder_is_readable_by_the_team(small_run):
    """Every file has the mode a plain open() gives under this umask (0644 under 022): none is 0600."""
    import stat

    from quantsweep.files import file_mode

    files = [p for p in small_run.run_dir.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.parent.name == "recommended" for p in files)
    wrong = {str(p.relative_to(small_run.run_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) & 0o666 != file_mode()}
    assert not wrong, wrong


def test_finalists_are_confirmed_on_disjoint_recorded_images(small_run):
    from quantsweep.data.coco import read_ids_file

    d = small_run.run_dir
    search, confirm = read_ids_file(d / "search_ids.txt"), read_ids_file(d / "confirm_ids.txt")
    calib = set(read_ids_file(d / "calib_ids.txt"))
    assert len(search) == 20 and len(confirm) == 40 and not set(search) & set(confirm) and not calib & set(confirm)
    conf = json.loads((d / "confirmation.json").read_text())
    assert conf["target"] == "ort-cpu" and conf["pool"] == 40 and len(conf["finalists"]) <= 2
    design = conf["design"]  # fixed before the first look: two looks of 20, alpha over the finalists
    assert design["looks"] == [20, 40] and design["finalists"] == max(len(conf["finalists"]), 1)
    # the speed verdict's share of the run's α, whatever else the run decides
    assert design["alpha"] == pytest.approx(0.8 * 0.05) and conf["alpha_split"]["run_alpha"] == 0.05
    assert design["resamples"] == SMALL["bootstrap"] and len(design["critical"]) == 2
    summary = json.loads((d / "results" / "summary.json").read_text())
    rows = {r["candidate"]: r for r in summary["rows"]}
    eligible = [n for n, r in rows.items() if n != "fp32" and r["error"] is None and not r["ablation"]
                and r["label"] == "accelerated" and (r["speedup_vs_fp32"] or 0) > 1 and r["delta_map50_95"] >= -0.01]
    assert bool(conf["results"]) == bool(eligible), (conf["results"], eligible)  # no vacuous loop below
    for c in conf["results"]:  # each finalist: beat FP32, point estimate within budget on the search subset
        assert rows[c["candidate"]]["speedup_vs_fp32"] > 1 and rows[c["candidate"]]["delta_map50_95"] >= -0.01
        assert c["images"] in (20, 40) and c["verdict"] in ("pass", "fail", "undecided")
        assert c["low"] <= c["delta"] <= c["high"]
        assert c["verdict"] != "undecided" or c["images"] == 40  # more images were added until the pool ran out
    passed = [c["candidate"] for c in conf["results"] if c["verdict"] == "pass"]
    assert passed == [c["candidate"] for c in conf["results"]][len(conf["results"]) - len(passed):]  # stops at a pass
    undecided = [c["candidate"] for c in conf["results"] if c["verdict"] == "undecided"]
    rec = summary["recommendation"]
    expected = passed[0] if passed else (undecided[0] if undecided else "fp32")
    assert rec["candidate"] == expected
    assert rec["status"] == ("deploy" if passed else "unconfirmed" if undecided else "fp32")
    assert (d / "recommended").is_dir() == (expected != "fp32")


def test_report_is_self_contained(small_run):
    page = (small_run.run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and 'id="summary"' in page and "int8-qdq-k3" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from a CDN


@pytest.mark.slow
def test_report_renders_in_headless_chromium_with_the_decision_above_the_fold(small_run, tmp_path):
    check_report_renders(small_run.run_dir, tmp_path)


def test_the_terminal_summary_fits_thirty_lines_at_100_columns(small_run):
    done = subprocess.run([sys.executable, "-m", "quantsweep", "run", "--resume", str(small_run.run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.rstrip().splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 100, done.stdout
    assert lines[0].startswith(("DEPLOY ", "STAY ON FP32", "BEST CANDIDATE, NOT CONFIRMED:"))
    assert lines[-1] == str(small_run.run_dir)
    assert any(line.startswith("W8A16 check:") for line in lines)
    cost = lines[-2]  # the run's cost by stage, with the machine it was measured on
    assert cost.startswith("cost: ") and " s wall — steps by stage: " in cost and "build " in cost, cost


def test_resume_of_a_finished_run_redoes_nothing(small_run):
    events = []
    cfg = SweepConfig.resolve(yaml_path=small_run.run_dir / "config.yaml")
    again = run_sweep(cfg, resume=small_run.run_dir, on_event=events.append)
    steps = [e for e in events if "step" in e]
    assert steps and all(e["event"] == "skip" for e in steps)
    assert [r.map50_95 for r in again.rows] == [r.map50_95 for r in small_run.rows]


def test_resume_with_other_settings_is_refused(small_run):
    cfg = SweepConfig(**{**SMALL, "out": small_run.run_dir.parent, "max_images": 30})
    with pytest.raises(QuantsweepError, match="different settings"):
        run_sweep(cfg, resume=small_run.run_dir)


def test_lock_keeps_a_second_writer_out(small_run):
    cfg = SweepConfig.resolve(yaml_path=small_run.run_dir / "config.yaml")
    first, second = open_run(cfg, small_run.run_dir), open_run(cfg, small_run.run_dir)
    first.lock()
    try:
        with pytest.raises(QuantsweepError, match="another quantsweep process"):
            second.lock()
    finally:
        first.unlock()


def test_a_failing_candidate_is_a_row(small_run, tmp_path, monkeypatch):
    """From a copy of the finished run whose w8a16 build is forgotten: that build now crashes."""
    from quantsweep.schemes.brevitas_qcdq import BrevitasQCDQ

    def boom(self, ctx, keep, out):
        raise RuntimeError("simulated exporter crash")

    monkeypatch.setattr(BrevitasQCDQ, "build", boom)
    copy = copy_run_until(small_run.run_dir, tmp_path / "runs", "build:w8a16")
    (copy / "candidates" / "w8a16.onnx").unlink()
    res = run_sweep(SweepConfig.resolve(yaml_path=copy / "config.yaml"), resume=copy)
    rows = {r.candidate: r for r in res.rows}
    assert "simulated exporter crash" in rows["w8a16"].error
    assert rows["int8-qdq"].error is None and (res.run_dir / "report.html").is_file()
    assert "simulated exporter crash" in (res.run_dir / "report.html").read_text()


def _table(run_dir):
    rows = json.loads((Path(run_dir) / "results" / "summary.json").read_text())["rows"]
    keep = ("candidate", "backend", "label", "size_mb", "map50_95", "map50", "delta_map50_95", "error")
    return sorted(tuple(r[k] for k in keep) for r in rows)


def _resume_gives_the_same_table(run_dir, small_run):
    steps = json.loads((run_dir / "manifest.json").read_text())["steps"]
    assert steps.get("report", {}).get("state") != "done"
    done = subprocess.run([sys.executable, "-m", "quantsweep", "run", "--resume", str(run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(run_dir)
    assert _table(run_dir) == _table(small_run.run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["build:int8-qdq-k3", "eval:w8a16", "bench:ort-cpu", "report"])
def test_sigkill_then_resume_gives_the_same_table(small_run, tmp_path, kill_at):
    """SIGKILL while a step runs (a build with its calibration, an evaluation, the benchmark,
    the report), then --resume."""
    jobs = ("--jobs", "2") if kill_at == "eval:w8a16" else ()  # also with a pool of workers
    proc, run_dir = start_until(small_run, tmp_path, kill_at, *jobs, start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _resume_gives_the_same_table(run_dir, small_run)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", ["sensitivity:int8-qdq", "build:w8a16", "bench:ort-cpu"])
def test_ctrl_c_stops_quickly_and_says_how_to_resume(small_run, tmp_path, stop_at):
    jobs = ("--jobs", "2") if stop_at == "build:w8a16" else ()  # the parent stops its worker pool
    proc, run_dir = start_until(small_run, tmp_path, stop_at, *jobs)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 15, "Ctrl-C took too long"
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert f"quantsweep run --resume {run_dir}" in err
    if stop_at == "bench:ort-cpu":
        _resume_gives_the_same_table(run_dir, small_run)


@pytest.mark.slow
def test_same_config_gives_identical_candidates_and_metrics(small_run, tmp_path):
    """Also with two parallel jobs: building and evaluating side by side changes nothing."""
    cfg = SweepConfig.resolve({"out": tmp_path, "jobs": 2}, small_run.run_dir / "config.yaml")
    again = run_sweep(cfg)
    a, b = small_run.run_dir, again.run_dir
    for scheme_json in sorted((a / "candidates").glob("*.scheme.json")):
        first, second = json.loads(scheme_json.read_text()), json.loads((b / "candidates" / scheme_json.name).read_text())
        assert first["sha256"] == second["sha256"], scheme_json.name
    for det in sorted((a / "results").glob("*.detections.json")):
        assert det.read_bytes() == (b / "results" / det.name).read_bytes(), det.name
    for m in sorted((a / "results").glob("*.metrics.json")):
        x, y = json.loads(m.read_text()), json.loads((b / "results" / m.name).read_text())
        assert {k: x[k] for k in ("map50_95", "map50", "map75", "num_detections")} == \
               {k: y[k] for k in ("map50_95", "map50", "map75", "num_detections")}
    # the ranking runs in a worker with one thread under --jobs 2 (two here): the same nodes in the same order,
    # its measured errors equal to float precision (ONNX Runtime's sums differ in the last bits across threads)
    ra, rb = (json.loads((d / "sensitivity.json").read_text())["int8-qdq"]["ranking"] for d in (a, b))
    assert [(n["node"], n["rank"], n["method"]) for n in ra] == [(n["node"], n["rank"], n["method"]) for n in rb]
    for x, y in zip(ra, rb):
        for key in ("score", "local_error"):
            assert (x.get(key) is None) == (y.get(key) is None), (x, y)
            if x.get(key) is not None:
                assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-9), (x, y)


def test_grid_mode_builds_every_k_and_writes_no_search(small_run):
    assert not (small_run.run_dir / "search.json").exists()
    assert {"int8-qdq", "int8-qdq-k3"} <= {r.candidate for r in small_run.rows}


