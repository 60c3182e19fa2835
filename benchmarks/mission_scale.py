"""What the default study costs at the mission's scale: a YOLOv10m-size detector at 640, measured.

Builds the YOLOv10m architecture from Ultralytics' ``yolov10m.yaml`` with the demo's 5 classes and
seeded random weights (training it on 2 cores is not feasible: **accuracy is not judged here, only
cost**; the class biases are zeroed so that the untrained head still emits its 300 boxes per image and
decoding and scoring cost what they cost on a trained model), exports it at 640 and runs the default
``quantsweep run`` on the demo world's images (100 search + 100 confirmation by default), then prints:

1. the run's wall and its seconds by stage (``quantsweep.report.cost``);
2. the measured cost per image of evaluation on each runtime that scored a model, and per build
   (each scheme), and the benchmark latencies (FP32 and the candidates, batch 1);
3. a projection for 500 and 5,000 evaluation images on this machine, one 16-core machine, one GPU
   and 32 nodes, saying per line what was measured and what was scaled.

    python benchmarks/mission_scale.py                      # the full measurement (about an hour on 2 cores)
    python benchmarks/mission_scale.py --arch yolov10n.yaml --imgsz 320 --search 20 --confirm 20   # a smoke run
    python benchmarks/mission_scale.py --report RUN_DIR     # the tables again from a finished run

Writes ``<out>/mission_scale.json``. Not a test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# what the projection does not measure here (no GPU on this machine): the H100 ONNX Runtime CUDA
# latency of the same YOLOv10m architecture at 640, batch 1, measured on a lent H100 (docs/benchmarks.md,
# "GPU: ONNX Runtime on an NVIDIA H100", 2026-11-23): FP32 3.97 ms
GPU_FP32_MS = 3.97
GPU_NOTE = "H100 ORT-CUDA FP32 b1 3.97 ms (measured 2026-11-23 on a lent H100, same architecture)"


def make_checkpoint(arch: str, nc: int, seed: int, out: Path) -> Path:
    """A seeded, untrained detection checkpoint of ``arch`` with ``nc`` classes, saved as Ultralytics saves."""
    import torch

    from quantsweep.offline import import_ultralytics

    import_ultralytics()  # offline, its settings in quantsweep's cache (as the package itself uses it)
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel(arch, nc=nc, verbose=False)
    head = model.model[-1]
    with torch.no_grad():
        for branch in ("cv3", "one2one_cv3"):  # the class logits' biases: 0, so scores spread around 0.5
            for seq in getattr(head, branch, []):
                seq[-1].bias.zero_()
    model.names = {i: f"class{i}" for i in range(nc)}
    model.args = {"imgsz": 640, "task": "detect"}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "train_args": {"imgsz": 640}, "date": "untrained", "version": "seeded",
                "epoch": -1}, out)
    return out


def run_study(pt: Path, world: Path, out: Path, imgsz: int, search: int, confirm: int,
              extra: list[str]) -> tuple[Path, float]:
    cmd = [sys.executable, "-m", "quantsweep", "run", "--model", str(pt), "--images", str(world / "val" / "images"),
           "--annotations", str(world / "val" / "annotations.json"), "--calib-dir", str(world / "calib" / "images"),
           "--calib-annotations", str(world / "calib" / "annotations.json"), "--imgsz", str(imgsz),
           "--max-images", str(search), "--confirm-images", str(confirm), "--confirm-step", str(min(confirm, 100)),
           "--out", str(out), "--quiet", *extra]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    print(done.stdout)
    if done.returncode != 0:
        sys.exit(f"quantsweep run failed ({done.returncode}): {done.stderr.strip().splitlines()[-3:]}")
    return Path(done.stdout.strip().splitlines()[-1]), wall


def measured(run_dir: Path) -> dict:
    """Per-image evaluation cost by runtime, per-build seconds by scheme, benchmark latencies, stages."""
    from quantsweep.env import cpu_class
    from quantsweep.report.cost import read_cost

    manifest = json.loads((run_dir / "manifest.json").read_text())["steps"]
    evals: dict[str, list[float]] = {}
    for path in sorted((run_dir / "results").rglob("*.metrics.json")):
        run = json.loads(path.read_text()).get("run") or {}
        if run.get("ms_per_image"):
            evals.setdefault(str(run.get("provider")), []).append(run["ms_per_image"])
    builds = {name.split(":", 1)[1]: rec["seconds"] for name, rec in manifest.items() if name.startswith("build:")}
    ranks = {name.split(":", 1)[1]: rec["seconds"] for name, rec in manifest.items() if name.startswith("sensitivity:")}
    latency: dict[str, dict[str, float]] = {}
    for path in sorted((run_dir / "results").glob("*.bench.json")):
        for row in json.loads(path.read_text()).get("rows", []):
            if row.get("latency_p50_ms"):
                latency.setdefault(row["backend"], {})[row["candidate"]] = row["latency_p50_ms"]
    env = json.loads((run_dir / "env.json").read_text())
    return {"run": str(run_dir), "machine": cpu_class(env.get("cpu", {})), "cost": read_cost(run_dir),
            "eval_ms_per_image": {k: sorted(v) for k, v in evals.items()}, "build_s": builds, "rank_s": ranks,
            "bench_p50_ms": latency, "evaluated_models": sum(len(v) for v in evals.values()),
            "search_images": len((run_dir / "search_ids.txt").read_text().split()),
            "confirm_images": len((run_dir / "confirm_ids.txt").read_text().split())}


def project(m: dict, images: int, probes: int = 6) -> list[dict]:
    """Wall per setting when every candidate is scored on ``images`` images (``--max-images``) and the
    confirmation pool is its default 400, from the measured run. Each line says what is measured and
    what is scaled."""
    st = {s["stage"]: s["seconds"] for s in m["cost"]["stages"]}
    search, pool = m["search_images"], m["confirm_images"]
    evaluate = st["evaluate"] * images / search  # every model's evaluation: linear in its images
    confirm = st["confirmation"] * 400 / pool
    # the search probes (none ran here: an untrained model loses nothing, so the fastest placement
    # qualified at K=0): a real model's search spends up to --max-evals probes, each a build of the
    # placement, its evaluation and a 2-second timing with FP32
    placement = max((m["build_s"].get(n, 0.0) for n in ("int8-trt", "int8-ov", "int8-qdq")), default=0.0)
    per_eval = st["evaluate"] / max(m["evaluated_models"], 1) / search
    probe = placement + per_eval * images + 4.0

    def search_s(eval_factor: float, build_factor: float) -> float:
        measured = st["search probes"]
        return measured * build_factor if measured else probes * (placement * build_factor
                                                                   + per_eval * images * eval_factor + 4.0)
    fixed = st["export"] + st["build"] + st["rank"] + st["benchmark"] + st["report"]
    host_ms = max(min(v for vals in m["eval_ms_per_image"].values() for v in vals)
                  - min(m["bench_p50_ms"].get("openvino", {"": 1e9}).values()), 0.0)
    fp32_ms = min((v.get("fp32") for v in m["bench_p50_ms"].values() if v.get("fp32")), default=None)
    gpu = (GPU_FP32_MS + host_ms) / (fp32_ms + host_ms) if fp32_ms else None
    longest_build = max(m["build_s"].values(), default=0.0)
    rows = [
        ("this machine (2 cores)", evaluate + confirm, search_s(1, 1), fixed,
         "measured here: per-model evaluation per image, builds, ranking, benchmarks; evaluation scaled linearly in "
         f"images, confirmation to its 400-image pool; search: {'measured' if st['search probes'] else f'{probes} probes estimated from the measured build and evaluation ({probe:.0f} s each)'}"),
        ("one 16-core CPU machine", (evaluate + confirm) / 8, search_s(1 / 8, 1 / 4),
         (fixed - st["benchmark"]) / 4 + st["benchmark"],
         "scaled (assumed, not measured): evaluation ÷8 (one 2-core stream per request), builds and probes ÷4 "
         "(calibration, GPTQ and NNCF use some threads), benchmarks unchanged (fixed seconds per model)"),
        ("one GPU (H100) evaluating", None if gpu is None else (evaluate + confirm) * gpu, search_s(gpu or 1, 1), fixed,
         f"scaled: each image's inference from {GPU_NOTE} instead of FP32's {fp32_ms:.0f} ms here, plus the "
         f"{host_ms:.0f} ms of letterbox and decoding per image measured here (host CPU); builds on the host"
         if fp32_ms else "no FP32 timing here"),
        ("32 nodes × 2 cores (Ray)", (evaluate + confirm) / 32, search_s(1 / 32, 1),
         longest_build + st["rank"] + st["benchmark"]
         + st["export"] + st["report"],
         "scaled: evaluation sharded over 32 nodes (--eval-shards, 2.5 ms per task measured on a local cluster), "
         "builds in parallel (wall = the longest build, measured), ranking, search probes (their evaluations sharded) "
         "and benchmarks sequential"),
    ]
    return [{"setting": n, "eval_s": e, "search_s": p, "fixed_s": f, "wall_s": None if e is None else e + p + f,
             "how": how} for n, e, p, f, how in rows]


def print_tables(m: dict, wall: float | None) -> None:
    print(f"Run {m['run']} on {m['machine']}" + (f": {wall:.0f} s wall" if wall else ""))
    print("\n| stage | seconds | steps |\n|---|---:|---:|")
    for s in m["cost"]["stages"]:
        if s["steps"]:
            print(f"| {s['stage']} | {s['seconds']:.1f} | {s['steps']} |")
    print(f"| **steps total** | **{m['cost']['steps_s']:.0f}** | |")
    print("\n| evaluation on | ms per image (wall, each evaluated model) |\n|---|---|")
    for provider, values in m["eval_ms_per_image"].items():
        print(f"| {provider} | {', '.join(f'{v:.0f}' for v in values)} |")
    print("\n| build | seconds |\n|---|---:|")
    for name, s in m["build_s"].items():
        print(f"| {name} | {s:.1f} |")
    for name, s in m["rank_s"].items():
        print(f"| ranking {name} | {s:.1f} |")
    print("\n| runtime | candidate | p50 ms (batch 1) |\n|---|---|---:|")
    for backend, rows in m["bench_p50_ms"].items():
        for name, ms in rows.items():
            print(f"| {backend} | {name} | {ms:.1f} |")
    for images in (500, 5000):
        print(f"\nProjection: every candidate scored on {images} images, confirmation on 400 (minutes):\n"
              "| setting | evaluation | search probes | builds, ranking, benchmarks | wall | how |\n"
              "|---|---:|---:|---:|---:|---|")
        for p in project(m, images):
            ev = "?" if p["eval_s"] is None else f"{p['eval_s'] / 60:.0f}"
            wall = "?" if p["wall_s"] is None else f"**{p['wall_s'] / 60:.0f}**"
            print(f"| {p['setting']} | {ev} | {p['search_s'] / 60:.0f} | {p['fixed_s'] / 60:.0f} | {wall} | {p['how']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="yolov10m.yaml")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--search", type=int, default=100)
    ap.add_argument("--confirm", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/mission-scale"))
    ap.add_argument("--report", type=Path, help="print the tables of a finished run folder")
    ap.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: extra `quantsweep run` flags")
    args = ap.parse_args()
    wall = None
    if args.report:
        run_dir = args.report
    else:
        from quantsweep.demo import materialize

        world = args.out / "world"
        materialize(world, splits=("val", "calib"))
        pt = make_checkpoint(args.arch, 5, args.seed, args.out / f"{Path(args.arch).stem}-demo5-seed{args.seed}.pt")
        run_dir, wall = run_study(pt, world, args.out / "runs", args.imgsz, args.search, args.confirm,
                                  [a for a in args.run_args if a != "--"])
    m = measured(run_dir)
    m["wall_s"] = wall
    m["projection"] = {str(n): project(m, n) for n in (500, 5000)}
    print_tables(m, wall)
    (run_dir / "mission_scale.json").write_text(json.dumps(m, indent=1))


if __name__ == "__main__":
    main()
