"""Evaluation images per second: one request at a time (batch 1, latency-compiled) against OpenVINO's
requests in flight (batch 1, throughput-compiled, what ``quantsweep eval`` and a run use), interleaved.

Both read the same letterboxed images; each round times the models' passes in turn, so a noisy
machine slows both alike. Prints images/s per mode, the ratio per round (median and range), and
whether every output was equal bit for bit.

    python benchmarks/eval_throughput.py --models RUN/candidates/fp32.onnx RUN/candidates/int8-ov.xml \\
        --images DEMO/val/images --annotations DEMO/val/annotations.json [--imgsz 320] [--n 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--annotations", type=Path, required=True)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import openvino as ov

    from quantsweep.data.coco import load_dataset
    from quantsweep.data.letterbox import iter_batches
    from quantsweep.env import cpu_class, cpu_info, worker_threads
    from quantsweep.runtimes.openvino import open_openvino

    ds = load_dataset(args.images, args.annotations)
    batches = list(iter_batches(ds, list(ds.images)[:args.n], (args.imgsz, args.imgsz), 1))
    threads = worker_threads()
    print(f"{len(batches)} images at {args.imgsz}, batch 1, {cpu_class(cpu_info())}, {threads} threads, "
          f"OpenVINO {ov.__version__.split('-')[0]}, {args.rounds} interleaved rounds\n")
    print("| model | one at a time img/s | requests in flight img/s | ratio (median [min, max]) | requests | equal |")
    print("|---|---:|---:|---|---:|---|")
    for model in args.models:
        latency = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_NUM_THREADS": threads})
        streams = open_openvino(model, threads)
        equal, ratios, rates = True, [], ([], [])
        for _ in range(args.rounds):
            t = time.perf_counter()
            ref = [latency(b.pixels)[latency.outputs[0]].copy() for b in batches]
            one = time.perf_counter() - t
            t = time.perf_counter()
            got = [out for _, out in streams.run_many(batches, lambda b: b.pixels)]
            many = time.perf_counter() - t
            equal = equal and all(np.array_equal(a, b) for a, b in zip(ref, got))
            ratios.append(one / many)
            rates[0].append(len(batches) / one)
            rates[1].append(len(batches) / many)
        print(f"| {model.name} | {np.median(rates[0]):.0f} | {np.median(rates[1]):.0f} | {np.median(ratios):.2f}× "
              f"[{min(ratios):.2f}, {max(ratios):.2f}] | {streams.requests} | {'bit for bit' if equal else 'DIFFER'} |")


if __name__ == "__main__":
    main()
