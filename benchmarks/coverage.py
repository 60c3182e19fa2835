"""How often the budget verdict is wrong: a coverage study of quantsweep's decision procedure.

A population large enough to know the truth (the demo generator's val split, ``--population``
images) is scored once by FP32 and by a set of candidates whose true losses span ~0 to a few
points (weight-only, INT8 placements, calibration sizes, four-bit). A candidate's *true* Δ is its
Δ on the whole population. Then ``--trials`` simulated studies draw a random search subset and a
confirmation pool of the sizes the defaults use (100 + 400 in rounds of 100; and the small-dataset
split: 80 labelled images in halves), select finalists and confirm them with quantsweep's own code
(:func:`quantsweep.decide.decision.finalists`, :func:`quantsweep.decide.confirm.confirm_finalists`,
the design of :mod:`quantsweep.decide.sequential`, the exact bootstrap of
:mod:`quantsweep.evaluate.bootstrap`), and, for comparison, with the procedure before it (100
resamples, a finalist passes the first time its 95 % interval clears the budget, unadjusted).

Speed order is *adversarial*: the candidate with the worst true Δ is assumed fastest, so the
first finalist tried is the one most likely to be falsely confirmed.

Printed per budget and procedure: the **false-confirmation rate** (a pick was confirmed whose true
Δ is worse than −budget), the **power** (trials where some candidate is truly within the budget by
≥ 0.3 points: how often a pick was confirmed), and the mean confirmation images scored.

    python benchmarks/coverage.py --demo               # cache in runs/coverage (first run builds + scores)
    python benchmarks/coverage.py --demo --trials 400 --population 2000 --cache DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

# name -> (registry scheme, calibration images): a spread of true losses on the demo
CANDIDATES = {
    "w8a16": ("w8a16", 64),
    "int8-ov-onnx": ("int8-ov-onnx", 64),
    "int8-trt": ("int8-trt", 64),
    "int8": ("int8-qdq", 64),
    "int8-calib4": ("int8-qdq", 4),
    "w4a16-graph": ("w4a16-graph-gptq", 64),
    "w4a8-graph": ("w4a8-graph-gptq", 64),
    "int8-calib1": ("int8-qdq", 1),
    "w4a16-graph-rtn": ("w4a16-graph-mse", 64),
}


def _prepare(cache: Path, population: int) -> dict[str, Any]:
    """Build and score every candidate on the population once; detections cached under ``cache``."""
    from quantsweep.data.calibration import CalibSet
    from quantsweep.data.coco import load_dataset
    from quantsweep.demo import DEMO_IMGSZ, materialize
    from quantsweep.demo.synth import write_split
    from quantsweep.evaluate.metrics import coco_map
    from quantsweep.evaluate.run import EvalSettings, evaluate
    from quantsweep.quantize.build import materialize as build
    from quantsweep.schemes import BuildContext, make_scheme

    cache.mkdir(parents=True, exist_ok=True)
    materialize(cache / "demo", splits=("calib",))
    pop = cache / f"population-{population}"
    if not (pop / "annotations.json").is_file():
        write_split(pop, "val", count=population)
    ds = load_dataset(pop / "images", pop / "annotations.json")
    ids = sorted(ds.images)
    fp32 = cache / "demo" / "model.onnx"
    settings = EvalSettings(provider="cpu")
    walls: dict[str, float] = {}
    models = {"fp32": fp32}
    for name, (registry, count) in CANDIDATES.items():
        out = cache / "candidates" / name
        scheme = make_scheme(registry, onnx_only=True)
        path = out / f"{scheme.name}.onnx"
        if not path.is_file():
            t = time.perf_counter()
            calib = CalibSet.from_folder(cache / "demo" / "calib" / "images", count, (DEMO_IMGSZ, DEMO_IMGSZ),
                                         ids, ds)
            build(scheme, BuildContext(fp32, None, calib, out / "work"), out)
            walls[f"build:{name}"] = time.perf_counter() - t
        models[name] = path
    dets: dict[str, list[dict[str, Any]]] = {}
    truth: dict[str, float] = {}
    for name, path in models.items():
        metrics = cache / "scores" / f"{name}-{population}.metrics.json"
        if not metrics.is_file():
            t = time.perf_counter()
            evaluate(path, ds, ids, settings, metrics)
            walls[f"eval:{name}"] = time.perf_counter() - t
        m = json.loads(metrics.read_text())
        dets[name] = json.loads(Path(m["detections_file"]).read_text())
        truth[name] = float(coco_map(ds.coco, dets[name], ids)["map50_95"] or 0.0)
    return {"ds": ds, "ids": ids, "dets": dets, "truth": truth, "walls": walls}


_STATE: dict[str, Any] = {}


def _tables(cache: Path, gt: dict[str, Any], ids: list[int], dets: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each model's COCOeval matching on the whole population, computed once and cached (``.npz``)."""
    import dataclasses

    from quantsweep.evaluate.bootstrap import MatchTable, match_table

    out = {}
    for name, d in dets.items():
        path = cache / "tables" / f"{name}-{len(ids)}.npz"
        if path.is_file():
            z = np.load(path)
            out[name] = MatchTable(tuple(int(i) for i in z["image_ids"]), tuple(int(c) for c in z["categories"]),
                                   *(z[f.name] for f in dataclasses.fields(MatchTable)[2:]))
            continue
        table = match_table(gt, d, ids)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f.name: np.asarray(getattr(table, f.name)) for f in dataclasses.fields(MatchTable)})
        out[name] = table
    return out


def _init(payload: dict[str, Any]) -> None:
    try:  # one BLAS thread per worker: the workers already fill the cores
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    _STATE.update(payload)
    _STATE["tables"] = _tables(payload["cache"], payload["gt"], payload["ids"], payload["dets"])


def _trial(seed: int) -> list[dict[str, Any]]:
    """One simulated study (both designs of subsets, every budget, old and new procedure)."""
    from quantsweep.decide.confirm import confirm_finalists, paired_evidence
    from quantsweep.decide.decision import finalists
    from quantsweep.decide.sequential import make_design
    from quantsweep.decide.split import plan_subsets
    from quantsweep.evaluate.bootstrap import resample_weights, weighted_map
    from quantsweep.results import Row

    st = _STATE
    rng = np.random.default_rng(seed)
    ids, tables, truth_delta, speed = st["ids"], st["tables"], st["truth_delta"], st["speed"]
    out = []
    cache: dict[tuple[str, tuple[int, ...]], tuple[float, np.ndarray]] = {}
    drawn_tables: dict[str, Any] = {}

    def boot(name: str, prefix: list[int], resamples: int) -> tuple[float, np.ndarray]:
        """A model's mAP and bootstrap on ``prefix``, computed once for every budget and both procedures:
        the first ``r`` resamples of a seed are the same whatever the total (``resample_weights``), so
        the old procedure's 100 are the first 100 of the new one's."""
        key = (name, tuple(prefix))
        most = max(resamples, st["resamples"])
        if key not in cache or len(cache[key][1]) < resamples:
            t = drawn_tables[name].subset(prefix)
            w = np.vstack([np.ones((1, len(prefix))), resample_weights(len(prefix), most, 0)])
            values = weighted_map(t, w)
            cache[key] = (float(values[0]), values[1:])
        value, boots = cache[key]
        return value, boots[:resamples]

    for regime in ("default", "small"):
        if regime == "default":
            drawn = [int(i) for i in rng.choice(ids, size=500, replace=False)]
            plan = plan_subsets(drawn, {}, 100, 400, 100)  # ids sorted: the draw is random, the order fixed
        else:
            drawn = [int(i) for i in rng.choice(ids, size=80, replace=False)]
            plan = plan_subsets(drawn, st["classes"], 100, 400, 100)
        search, chunks = list(plan.search), [list(c) for c in plan.chunks]
        drawn_tables.update({n: t.subset(drawn) for n, t in tables.items()})  # this study's images only
        sub = {n: t.subset(search) for n, t in drawn_tables.items()}
        search_map = {n: float(weighted_map(t, np.ones(len(search)))[0]) for n, t in sub.items()}
        for budget in st["budgets"]:
            rows = [Row("fp32", "fp32", "fp32", backend="x", latency_p50_ms=10.0, speedup_vs_fp32=1.0,
                        delta_map50_95=0.0, label="float")]
            rows += [Row(n, n, "q", backend="x", latency_p50_ms=10.0 / speed[n], speedup_vs_fp32=speed[n],
                         delta_map50_95=search_map[n] - search_map["fp32"], label="accelerated")
                     for n in tables if n != "fp32"]
            chosen = [r.candidate for r in finalists(rows, budget, "x", 3)]
            for proc in ("new", "old"):
                pick, used = None, 0
                if chosen and chunks:
                    if proc == "new":
                        looks = list(np.cumsum([len(c) for c in chunks]))
                        design = make_design(0.05, looks, len(chosen), "obf", st["resamples"])

                        def score(name: str, prefix: list[int]) -> tuple[float, float, float, float]:
                            (bm, bb), (cm, cb) = boot("fp32", prefix, st["resamples"]), boot(name, prefix,
                                                                                               st["resamples"])
                            return paired_evidence(cm, bm, cb, bb)

                        results = confirm_finalists(chosen, chunks, score, budget, design)
                        used = max(c.images for c in results)
                        pick = next((c.candidate for c in results if c.verdict == "pass"), None)
                    else:  # before: 100 resamples, 95 % interval per look, every finalist, unadjusted
                        for name in chosen:
                            prefix: list[int] = []
                            for chunk in chunks:
                                prefix += chunk
                                (bm, bb), (cm, cb) = boot("fp32", prefix, 100), boot(name, prefix, 100)
                                _, low, high, _ = paired_evidence(cm, bm, cb, bb)
                                used = max(used, len(prefix))
                                if low >= -budget / 100 or high < -budget / 100:
                                    break
                            if low >= -budget / 100 and pick is None:
                                pick = name
                out.append({"seed": seed, "regime": regime, "budget": budget, "procedure": proc, "pick": pick,
                            "false": pick is not None and truth_delta[pick] < -budget / 100, "images": used,
                            "finalists": chosen})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="store_true", help="the demo detector and generator (the only population now)")
    ap.add_argument("--population", type=int, default=2000, help="demo val images that define the truth")
    ap.add_argument("--trials", type=int, default=400, help="simulated studies per budget")
    ap.add_argument("--budgets", default="0.5,1.0")
    ap.add_argument("--resamples", type=int, default=200,
                    help="the new procedure's bootstrap resamples for the SE (quantsweep's default is 2000; fewer "
                         "make the SE noisier, which if anything inflates false confirmations: the study is "
                         "conservative for the default)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", type=Path, default=Path("runs/coverage"))
    ap.add_argument("--out", type=Path, default=None, help="JSON of every trial (default: CACHE/coverage.json)")
    args = ap.parse_args()
    if not args.demo:
        ap.error("only --demo is supported: the truth needs a population thousands of labelled images large")
    t0 = time.perf_counter()
    prep = _prepare(args.cache, args.population)
    t_prep = time.perf_counter() - t0
    truth = prep["truth"]
    truth_delta = {n: v - truth["fp32"] for n, v in truth.items()}
    order = sorted((n for n in truth if n != "fp32"), key=lambda n: truth_delta[n])  # worst first = fastest
    speed = {n: 2.0 - 0.1 * k for k, n in enumerate(order)}
    classes: dict[int, set[int]] = {}
    for a in prep["ds"].coco["annotations"]:
        classes.setdefault(int(a["image_id"]), set()).add(int(a["category_id"]))
    budgets = [float(b) for b in args.budgets.split(",")]
    payload = {"gt": prep["ds"].coco, "ids": prep["ids"], "dets": prep["dets"], "truth_delta": truth_delta,
               "speed": speed, "budgets": budgets, "resamples": args.resamples, "classes": classes,
               "cache": args.cache}
    _tables(args.cache, prep["ds"].coco, prep["ids"], prep["dets"])  # once, before the workers read them
    print(f"population: {len(prep['ids'])} demo val images; FP32 mAP50-95 {truth['fp32']:.4f}; candidates' true Δ "
          "(points), fastest first (adversarial order):")
    for n in order:
        print(f"  {n:<14} {100 * truth_delta[n]:+.2f}  ({speed[n]:.1f}× assumed)")
    t1 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(payload,)) as pool:
        trials = [r for rs in pool.map(_trial, range(args.trials), chunksize=4) for r in rs]
    t_sim = time.perf_counter() - t1
    print(f"\n{args.trials} trials per budget; new = α 0.05 one-sided, OBF spending over the looks, Bonferroni over "
          f"finalists, SE from {args.resamples} resamples; old = 100 resamples, 95 % interval, unadjusted looks\n")
    print("| regime | budget | procedure | false-confirmation rate | power | confirmed | mean confirmation images |")
    print("|---|---:|---|---:|---:|---:|---:|")
    worst, powers = 0.0, []
    for regime in ("default", "small"):
        for budget in budgets:
            good = any(truth_delta[n] >= -budget / 100 + 0.003 for n in order)
            for proc in ("new", "old"):
                rs = [r for r in trials if r["regime"] == regime and r["budget"] == budget and r["procedure"] == proc]
                false = sum(r["false"] for r in rs) / len(rs)
                confirmed = sum(r["pick"] is not None for r in rs) / len(rs)
                power = confirmed if good else float("nan")
                if proc == "new":
                    worst = max(worst, false)
                    if good:
                        powers.append(power)
                label = "default (100 search + 400 pool)" if regime == "default" else "small (80 images, halves)"
                print(f"| {label} | {budget:g} | {proc} | {false:.3f} | {power:.3f} | {confirmed:.3f} | "
                      f"{np.mean([r['images'] for r in rs]):.0f} |")
    out = args.out or args.cache / "coverage.json"
    out.write_text(json.dumps({"truth_delta": truth_delta, "speed": speed, "trials": trials}, indent=1))
    print(f"\nwall: prepare {t_prep:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in prep['walls'].items()) or 'cached'}), "
          f"simulation {t_sim:.0f} s on {args.jobs} process(es); total {time.perf_counter() - t0:.0f} s; trials in {out}")
    print(f"coverage: false_confirm_max={worst:.3f} power_mean={np.mean(powers) if powers else float('nan'):.3f} "
          f"trials={args.trials}")


if __name__ == "__main__":
    main()
