"""A small demo sweep on a local Ray cluster of 1, 2 and 4 simulated nodes (127.0.0.1 only).

For each cluster size: the sweep's wall time with ``--executor ray`` (evaluations split into as
many shards as nodes; files shipped through the object store, as on a cluster without a shared
filesystem), the same with ``--shared-dir`` (workers read the run folder in place), the scheduling
overhead of one task (a no-op round trip, median of 50), and the data shipped per candidate (the
run's ``executor.json``: files sent to workers once each, files sent back). Nodes share this
machine's cores, so wall time shows overhead, not speed-up; the projection in docs/benchmarks.md
scales the measured per-task costs to real nodes.

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

    import json

    import ray
    from ray.cluster_utils import Cluster

    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.runner import run_sweep

    base = dict(grid=True, schemes=("int8-qdq", "int8-ov", "w8a16"), ks=(0,), max_images=50, calib_count=16,
                bench_seconds=0.5, bootstrap=20, sensitivity_images=1, backends=("ort-cpu",), confirm_images=0,
                ablation=False)
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
            walls = {}
            for shared in (False, True):
                t = time.perf_counter()
                res = run_sweep(SweepConfig(out=args.out / f"n{n}-{'shared' if shared else 'shipped'}",
                                            executor="ray", ray_address=cluster.address, eval_shards=n,
                                            shared_dir=shared, **base))
                walls[shared] = time.perf_counter() - t
                if not shared:
                    stats = json.loads((res.run_dir / "executor.json").read_text())
                    candidates = len({r.candidate for r in res.rows} - {"fp32"}) or 1
                    per_candidate = (stats["bytes_out"] + stats["bytes_back"]) / candidates
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()
        rows.append((n, walls[False], walls[True], statistics.median(lat), stats, per_candidate))
    print("Demo sweep on a local Ray cluster (127.0.0.1; nodes share this machine's 2 cores): int8, int8-ov, "
          "w8a16 at K=0, 50 images, ORT CPU\n")
    print("| nodes | wall, files shipped (s) | wall, --shared-dir (s) | task round trip (ms, median of 50) | "
          "files out | MB out | MB back | MB per candidate |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, ship_wall, shared_wall, rt, st, per in rows:
        print(f"| {n} | {ship_wall:.0f} | {shared_wall:.0f} | {rt:.1f} | {st['files_out']} | "
              f"{st['bytes_out'] / 1e6:.1f} | {st['bytes_back'] / 1e6:.1f} | {per / 1e6:.2f} |")


if __name__ == "__main__":
    main()
