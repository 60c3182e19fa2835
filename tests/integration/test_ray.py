"""The sweep on a Ray cluster of two nodes on 127.0.0.1: same files, metrics and decision as local.

The cluster is started here (``ray.cluster_utils.Cluster``, loopback only) and stopped after;
one node carries the custom resource ``ort_target`` that stands for "the machine that will serve
the model", and the ort-cpu benchmark is bound to it with ``bench_on``.
"""

import json
from pathlib import Path

import pytest

from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.runner import run_sweep

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CFG = dict(grid=True, schemes=("int8", "w8a16"), ks=(0,), max_images=20, calib_count=8, bench_seconds=0.3,
           bootstrap=20, sensitivity_images=1, backends=("ort-cpu",), confirm_images=20, confirm_step=20,
           finalists=1, ablation=False)
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
    assert _hashes(a) == _hashes(b) and len(_hashes(a)) == 2
    assert _metrics(a) == _metrics(b)
    for det in sorted((a / "results").glob("*.detections.json")):  # sharded over two workers: the same bytes
        assert det.read_bytes() == (b / "results" / det.name).read_bytes(), det.name
    sharded = json.loads((b / "results" / "int8-qdq.metrics.json").read_text())["run"]
    assert sharded["shards"] == 2
    assert res.recommendation.candidate == local_run.recommendation.candidate
    bench = json.loads((b / "results" / "int8-qdq.ort-cpu.bench.json").read_text())
    ray.init(address=cluster.address)
    try:
        bound = {n["NodeID"] for n in ray.nodes() if n["Alive"] and "ort_target" in n["Resources"]}
    finally:
        ray.shutdown()
    assert bench["node"]["bound_to"] == {"ort_target": 1.0} and bench["node"]["ray_node_id"] in bound
    assert bench["node"]["ray_node_ip"] == "127.0.0.1"


def test_a_backend_bound_to_a_resource_no_node_has_is_a_row_saying_so(cluster, tmp_path):
    res = run_sweep(SweepConfig(out=tmp_path, executor="ray", ray_address=cluster.address,
                                bench_on=("ort-cpu=gpu_box",), **{**CFG, "schemes": ("int8",), "confirm_images": 0}))
    rows = [r for r in res.rows if r.backend == "ort-cpu"]
    assert rows and all("no node of the Ray cluster carries resource 'gpu_box'" in (r.error or "") for r in rows)
