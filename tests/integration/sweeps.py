"""What the sweep tests share: resuming a copied run in a subprocess until a step starts, and checking
that a run's report renders in headless Chromium."""

import html as html_lib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import copy_run_until


def chromium(page, tmp_path, *flags):
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                           "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *flags, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def check_report_renders(run_dir, tmp_path):
    """The report in headless Chromium: the decision above the fold, every image decoded, no console
    error, the card's command runs the shipped file, a screenshot that is a page."""
    page = run_dir / "report.html"
    dom = chromium(page, tmp_path, "--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom")
    check = json.loads(html_lib.unescape(re.search(r'data-check="([^"]*)"', dom.stdout).group(1)))
    assert 0 < check["card_bottom"] <= 900, check  # the decision card lies inside the first viewport
    assert len(check["images"]) >= 2 and all(w > 0 for w in check["images"]), check  # every image decodes
    console = [x for x in dom.stderr.splitlines() if "CONSOLE" in x or "Uncaught" in x]
    assert not console, console
    card = re.search(r'<section id="decision".*?</section>', dom.stdout, re.S).group(0)
    if (run_dir / "recommended").is_dir():  # the card's command runs the shipped file
        command = html_lib.unescape(re.search(r'<pre id="deploy-cmd">(.*?)</pre>', card, re.S).group(1))
        done = subprocess.run(command, shell=True, cwd=run_dir / "recommended", capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        assert done.returncode == 0 and "detections.json" in done.stdout, done.stderr[-1000:]  # quantsweep predict
    else:
        assert "Stay on FP32" in card
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one


def start_until(finished, tmp_path, step, *extra, **popen):
    """Resume a copy of ``finished`` (see :func:`_copy_until`) in a subprocess; return it once
    ``step`` has started, and the copy's folder."""
    run_dir = copy_run_until(finished.run_dir, tmp_path / "runs", step)
    events = tmp_path / "events.jsonl"
    cmd = [sys.executable, "-m", "quantsweep", "run", "--resume", str(run_dir), "--quiet", "--log-json", str(events),
           *extra]
    # Ctrl-C reaches the run even when the tests were started in the background (which ignores SIGINT)
    popen.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    deadline, started = time.time() + 300, False
    while time.time() < deadline and proc.poll() is None and not started:
        lines = [json.loads(x) for x in events.read_text().splitlines() if x.endswith("}")] if events.exists() else []
        started = any(e["event"] == "start" and e.get("step") == step for e in lines)
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    if not started:
        proc.kill()
        raise AssertionError(f"step {step} did not start within 300 s: {proc.communicate()[1][-2000:]}")
    return proc, run_dir
