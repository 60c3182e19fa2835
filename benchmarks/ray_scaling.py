"""A small demo sweep on a local Ray cluster of 1, 2 and 4 simulated nodes (127.0.0.1 only).

For each cluster size: the sweep's wall time with ``--executor ray`` (and evaluations split into
as many shards as nodes), the scheduling overhead of one task (a no-op round trip, median of 50),
and the bytes each build and evaluation task ships (its pickled arguments: in this shared-folder
mode the model files stay on disk, so this is the dataset index, the calibration tensor and the
scheme). Nodes share this machine's cores, so wall time shows overhead, not speed-up; the
projection in docs/benchmarks.md scales the measured per-task costs to real nodes.

    python benchmarks/ray_scaling.py [--nodes 1,2,4] [--out runs/bench-ray]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

GIB = 1024 ** 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="1,2,4")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-ray"))
    args = ap.parse_args()

    import cloudpickle
    import ray
    from ray.cluster_utils import Cluster

    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.executors import Task
    from quantsweep.sweep.runner import run_sweep

    base = dict(grid=True, schemes=("int8", "int8-ov", "w8a16"), ks=(0,), max_images=50, calib_count=16,
                bench_seconds=0.5, bootstrap=20, sensitivity_images=1, backends=("ort-cpu",), confirm_images=0,
                ablation=False)
    shipped: dict[str, int] = {}
    original = Task.__init__

    def measuring_init(self: Task, *a: object, **kw: object) -> None:
        original(self, *a, **kw)  # type: ignore[arg-type]
        shipped[self.step] = len(cloudpickle.dumps((self.func, self.args)))

    Task.__init__ = measuring_init  # type: ignore[method-assign]
    rows = []
    for n in [int(x) for x in args.nodes.split(",")]:
        node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "memory": 3 * GIB, "object_store_memory": 150 * 1024 ** 2}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        for _ in range(n - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        try:
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False  # see quantsweep.sweep.executors.RayExecutor
            ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
            noop = ray.remote(lambda: None)
            ray.get(noop.remote())
            lat = []
            for _ in range(50):
                t = time.perf_counter()
                ray.get(noop.remote())
                lat.append(1000 * (time.perf_counter() - t))
            ray.shutdown()
            t = time.perf_counter()
            run_sweep(SweepConfig(out=args.out / f"n{n}", executor="ray", ray_address=cluster.address,
                                  eval_shards=n, **base))
            wall = time.perf_counter() - t
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()
        builds = [v for k, v in shipped.items() if k.startswith("build:")]
        evals = [v for k, v in shipped.items() if k.startswith("eval:")]
        rows.append((n, wall, statistics.median(lat), statistics.median(builds), statistics.median(evals)))
    print("Demo sweep on a local Ray cluster (127.0.0.1; nodes share this machine's 2 cores): int8, int8-ov, "
          "w8a16 at K=0, 50 images, ORT CPU\n")
    print("| nodes | sweep wall (s) | task round trip (ms, median of 50) | bytes per build task | bytes per eval task |")
    print("|---:|---:|---:|---:|---:|")
    for n, wall, rt, b, e in rows:
        print(f"| {n} | {wall:.0f} | {rt:.1f} | {b:,.0f} | {e:,.0f} |")


if __name__ == "__main__":
    main()
