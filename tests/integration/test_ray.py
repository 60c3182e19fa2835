"""The sweep on a Ray cluster of two nodes on 127.0.0.1: same files, metrics and decision as local.

The cluster is started here (``ray.cluster_utils.Cluster``, loopback only) and stopped after;
one node carries the custom resource ``ort_target`` that stands for "the machine that will serve
the model", and the ort-cpu benchmark is bound to it with ``bench_on``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.conftest import copy_run_until

from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.runner import run_sweep

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CFG = dict(grid=True, schemes=("int8-qdq", "w8a16-graph"), ks=(0, 1), max_images=20, calib_count=8, bench_seconds=0.3,
           bootstrap=200, sensitivity_images=1, sensitivity_probe_top=4, backends=("ort-cpu",), confirm_images=20, confirm_step=20,
           finalists=1, ablation=False, budget=100.0)  # a budget every candidate keeps: a finalist is confirmed
GIB = 1024 ** 3


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "memory": 3 * GIB, "object_store_memory": 150 * 1024 ** 2}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    c.add_node(**node, resources={"ort_target": 1})
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    return run_sweep(SweepConfig(out=tmp_path_factory.mktemp("local"), **CFG))


def _hashes(run_dir):
    return {p.name: json.loads(p.read_text())["sha256"] for p in sorted((run_dir / "candidates").glob("*.scheme.json"))}


def _metrics(run_dir):
    keep = ("map50_95", "map50", "map75", "num_detections", "ap_per_class")
    return {p.name: {k: json.loads(p.read_text())[k] for k in keep}
            for p in sorted((Path(run_dir) / "results").glob("*.metrics.json"))}


def test_a_ray_sweep_matches_the_local_one_and_times_on_the_bound_node(cluster, local_run, tmp_path):
    res = run_sweep(SweepConfig(out=tmp_path, executor="ray", ray_address=cluster.address, eval_shards=2,
                                bench_on=("ort-cpu=ort_target",), **CFG))
    assert not ray.is_initialized()  # the driver disconnected; the cluster is the fixture's
    a, b = local_run.run_dir, res.run_dir
    assert _hashes(a) == _hashes(b) and len(_hashes(a)) == 3  # int8-qdq, int8-qdq-k1, w8a16-graph
    assert _metrics(a) == _metrics(b)
    for det in sorted((a / "results").glob("*.detections.json")):  # sharded over two workers: the same bytes
        assert det.read_bytes() == (b / "results" / det.name).read_bytes(), det.name
    sharded = json.loads((b / "results" / "int8-qdq.metrics.json").read_text())["run"]
    assert sharded["shards"] == 2
    bench = json.loads((b / "results" / "int8-qdq.ort-cpu.bench.json").read_text())
    ray.init(address=cluster.address)
    try:
        bound = {n["NodeID"] for n in ray.nodes() if n["Alive"] and "ort_target" in n["Resources"]}
    finally:
        ray.shutdown()
    assert bench["node"]["bound_to"] == {"ort_target": 1.0} and bench["node"]["ray_node_id"] in bound
    assert bench["node"]["ray_node_ip"] == "127.0.0.1"
    tasks = json.loads((b / "executor.json").read_text())["tasks"]  # every build and evaluation went to Ray
    assert {"build:int8-qdq", "eval:fp32", "eval:int8-qdq", "build:w8a16-graph", "sensitivity:int8-qdq",
            "build:int8-qdq-k1"} <= set(tasks), tasks  # the ranking too
    confirmed = json.loads((b / "confirmation.json").read_text())["results"]
    assert confirmed, "the budget admits a finalist: its confirmation must be among the Ray tasks"
    assert {f"confirm:{c['candidate']}:0" for c in confirmed} | {"confirm:fp32:0"} <= set(tasks), tasks


def test_a_backend_bound_to_a_resource_no_node_has_is_refused_in_one_line(cluster):
    """--bench-on names a resource no node carries: the benchmark call says so (the sweep makes it a row)."""
    from quantsweep.errors import QuantsweepError
    from quantsweep.sweep.choose import make_executor

    executor = make_executor(1, "ray", cluster.address, False)
    try:
        with pytest.raises(QuantsweepError, match="no node of the Ray cluster carries resource 'gpu_box'"):
            executor.call(len, ((),), {"gpu_box": 1})
        assert executor.call(len, ((1, 2),), {"ort_target": 1})[0] == 2  # the bound node answers
    finally:
        executor.close()


def _same_results(a, b):
    """The same candidates (bytes) and the same accuracy. Not the same recommendation: the resumed run
    times its models again, and on ORT CPU a weight-only model runs within timing noise of FP32."""
    assert _hashes(a) == _hashes(b) and _metrics(a) == _metrics(b)
    for d in (a, b):  # each run's recommendation is its table's recommended row
        summary = json.loads((d / "results" / "summary.json").read_text())
        marked = [r["candidate"] for r in summary["rows"] if r["recommended"]]
        assert summary["recommendation"]["candidate"] is not None  # FP32 was measured: at least it is chosen
        assert marked == [summary["recommendation"]["candidate"]]


def _ray_step_processes(prefix):
    """Ray worker processes now running a step whose name starts with ``prefix`` (their title is ``ray::<step>``)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        title = " ".join(proc.info["cmdline"] or [])
        if title.startswith(f"ray::{prefix}"):
            found.append((proc.info["pid"], title))
    return found


def test_a_worker_killed_mid_evaluation_is_retried_to_the_same_results(cluster, local_run, tmp_path):
    """From a copy of the local run whose evaluations are forgotten: Ray re-runs them, one is killed."""
    done: dict = {}
    first_eval = next(n for n in json.loads((local_run.run_dir / "manifest.json").read_text())["steps"]
                      if n.startswith("eval:"))
    copy = copy_run_until(local_run.run_dir, tmp_path / "runs", first_eval)
    cfg = SweepConfig(out=tmp_path, executor="ray", ray_address=cluster.address, **CFG)
    driver = threading.Thread(target=lambda: done.setdefault("res", run_sweep(cfg, resume=copy)))
    driver.start()
    killed, deadline = None, time.time() + 300
    while killed is None and driver.is_alive() and time.time() < deadline:
        for pid, title in _ray_step_processes("eval:"):
            os.kill(pid, signal.SIGKILL)
            killed = title
            break
        time.sleep(0.02)
    driver.join(600)
    assert killed, "no evaluation task was seen running"
    res = done["res"]  # the run finished: Ray re-ran the killed evaluation on a fresh worker
    _same_results(local_run.run_dir, res.run_dir)
    steps = json.loads((res.run_dir / "manifest.json").read_text())["steps"]
    assert all(s["state"] == "done" for name, s in steps.items() if name.startswith("eval:")), steps


def test_killing_the_driver_then_resume_on_the_cluster_completes_to_the_same_results(cluster, local_run, tmp_path):
    events = tmp_path / "events.jsonl"
    ray_flags = ["--executor", "ray", "--ray-address", cluster.address]
    run_dir = copy_run_until(local_run.run_dir, tmp_path / "runs", "eval:w8a16-graph")
    cmd = [sys.executable, "-m", "quantsweep", "run", "--resume", str(run_dir), "--quiet", "--log-json", str(events),
           *ray_flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        lines = [json.loads(x) for x in events.read_text().splitlines() if x.endswith("}")] if events.exists() else []
        if any(e["event"] == "start" and e.get("step") == "eval:w8a16-graph" for e in lines):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert json.loads((run_dir / "manifest.json").read_text())["steps"].get("report", {}).get("state") != "done"
    resume = subprocess.run([sys.executable, "-m", "quantsweep", "run", "--resume", str(run_dir), "--quiet",
                             *ray_flags], capture_output=True, text=True, timeout=600)
    assert resume.returncode == 0, resume.stderr[-2000:]
    _same_results(local_run.run_dir, run_dir)
