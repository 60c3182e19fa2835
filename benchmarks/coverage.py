"""How often is a budget verdict wrong, and how often does it confirm a good pick? A coverage study of
quantsweep's decision procedure, with its own code.

**The world.** A population of ``--population`` demo val images is scored once by FP32 and by a set
of candidates whose true losses span ~0 to a few points (weight-only, INT8 placements, calibration
sizes, four-bit), plus the K series of the speed search's placement (``int8-ov-onnx`` with its K most
damaging nodes kept float, ranked as a run ranks them). Each simulated study draws its images *with
replacement* from the population: the population's empirical distribution is then the world the
studies sample, and a candidate's Δ on the whole population is its true Δ *exactly* (mAP is
unchanged when every image's weight is scaled alike, so the population's mAP is the limit of a
study's as its images grow) — no finite-population correction is needed, and the studies are
independent draws (the old study drew 500 of the 2,000 truth images without replacement: its
bootstrap SE was ~13 % too large for that world, so false confirmations read low). Every study has
its own seed, for its draw and for its bootstrap resamples.

**The procedure**, quantsweep's own code: the split (:func:`quantsweep.decide.split.plan_subsets`: 100
search + 400 confirmation images in rounds of 100; and a small dataset: 80 labelled images in class-
stratified halves), the finalists (:func:`quantsweep.decide.decision.finalists`), the confirmation
(:func:`quantsweep.decide.confirm.confirm_finalists`) under the design of
:mod:`quantsweep.decide.sequential` at the speed verdict's share of α (``SPEED_SHARE`` × 0.05), by
both finalist rules (``bonferroni``: fastest first at α/finalists; ``fixed-sequence``: safest first
at the full α, stopping at the first not passed). Speed order is *adversarial*: the candidate with
the worst true Δ is assumed fastest, so the first finalist tried is the one most likely to be
falsely confirmed.

Printed:

- per regime, budget and rule: the **false-confirmation rate** (a pick was confirmed whose true Δ is
  worse than −budget) with its Clopper–Pearson 95 % interval, the **power** (studies where some
  candidate is truly within the budget by ≥ 0.3 points: how often a pick was confirmed), the mean
  assumed speed of the pick and the confirmation images scored;
- the **power curve**: every candidate alone as a finalist against budgets 0.25 … 2.5 points, its
  pass rate by its true margin (true Δ + budget, 0.25-point bins; margins below 0 are false passes);
- the **run-level error**: the speed verdict and the two 4-bit size verdicts of a ``--size`` run
  together (``alpha_split``), how often *any* of them is a false confirmation;
- the **K search on few images**: whether the speed search's K, chosen on the search subset,
  is truly better than K=0 more often than worse, and what it does to the verdict's power.

The last line: ``coverage: false_confirm_max=X false_confirm_upper=U power_mean=Y trials=N``.

    python benchmarks/coverage.py --demo               # cache in runs/coverage (first run builds + scores)
    python benchmarks/coverage.py --demo --trials 400 --population 2000 --cache DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
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
K_PLACEMENT = "int8-ov-onnx"  # the placement whose K search the small-data policy is measured on
K_SERIES = (1, 2, 4, 8, 16, 32)


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
    # the K series of the speed search's placement (int8-ov-onnx: NNCF's placement as QDQ ONNX), ranked once
    # on 8 calibration images as a run ranks it, then built with its K most damaging nodes kept float
    sens_path = cache / "candidates" / "k-series" / "sensitivity.json"
    calib64: CalibSet | None = None  # read once, on the first cache miss

    def calib_64() -> CalibSet:
        nonlocal calib64
        if calib64 is None:
            calib64 = CalibSet.from_folder(cache / "demo" / "calib" / "images", 64, (DEMO_IMGSZ, DEMO_IMGSZ), ids, ds)
        return calib64

    if not sens_path.is_file():
        from quantsweep.quantize.ranking import compute_sensitivity

        t = time.perf_counter()
        calib = calib_64()
        sens_path.parent.mkdir(parents=True, exist_ok=True)
        sens_path.write_text(json.dumps(compute_sensitivity(fp32, None, calib, K_PLACEMENT, cache / "k-work")))
        walls["rank:" + K_PLACEMENT] = time.perf_counter() - t
    sensitivity = json.loads(sens_path.read_text())
    for k in K_SERIES:
        out = cache / "candidates" / f"k{k}"
        scheme = make_scheme(K_PLACEMENT, onnx_only=True, k=k)
        path = out / f"{scheme.name}.onnx"
        if not path.is_file():
            t = time.perf_counter()
            build(scheme, BuildContext(fp32, None, calib_64(), out / "work"), out, sensitivity["ranking"])
            walls[f"build:k{k}"] = time.perf_counter() - t
        models[f"{K_PLACEMENT}-k{k}"] = path
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
    return {"ds": ds, "ids": ids, "dets": dets, "truth": truth, "walls": walls, "sensitivity": sensitivity}


_STATE: dict[str, Any] = {}
ALPHA = 0.05
RULES = ("bonferroni", "fixed-sequence")
CURVE_BUDGETS = tuple(0.25 * k for k in range(1, 11))  # 0.25 … 2.5 points
BIN = 0.25  # points of true margin per bin of the power curve


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


class _Study:
    """One simulated study's images: ``draw`` population positions (with replacement); a study image's
    id is its position in the draw, so the same population image drawn twice is two images."""

    def __init__(self, tables: dict[str, Any], pop_ids: list[int], draw: np.ndarray, seed: int, resamples: int):
        self.tables, self.pop_ids, self.draw = tables, pop_ids, draw
        self.seed, self.resamples = seed, resamples
        self.cache: dict[tuple[str, tuple[int, ...]], tuple[float, np.ndarray]] = {}

    def boot(self, name: str, ids: list[int]) -> tuple[float, np.ndarray]:
        """``name``'s mAP on the study images ``ids`` and on their paired bootstrap resamples (the study's
        seed: every model gets the same resampled multisets)."""
        from quantsweep.evaluate.bootstrap import resample_weights, weighted_map

        key = (name, tuple(ids))
        if key not in self.cache:  # the matching restricted to these images' population images, then weighted
            uniq, cols = np.unique(self.draw[np.asarray(ids)], return_inverse=True)
            onehot = np.zeros((len(ids), len(uniq)))
            onehot[np.arange(len(ids)), cols] = 1.0
            w = np.vstack([np.ones((1, len(ids))), resample_weights(len(ids), self.resamples, self.seed)]) @ onehot
            values = weighted_map(self.tables[name].subset([self.pop_ids[u] for u in uniq]), w)
            self.cache[key] = (float(values[0]), values[1:])
        return self.cache[key]

    def evidence(self, name: str, ids: list[int]) -> tuple[float, float, float, float]:
        from quantsweep.decide.confirm import paired_evidence

        (bm, bb), (cm, cb) = self.boot("fp32", ids), self.boot(name, ids)
        return paired_evidence(cm, bm, cb, bb)


def _trial(seed: int) -> dict[str, list[dict[str, Any]]]:
    """One simulated study per regime: both rules at every budget, the power curve, the run-level
    error and the K search."""
    from quantsweep.decide.confirm import confirm_finalists
    from quantsweep.decide.decision import finalists
    from quantsweep.decide.sequential import SPEED_SHARE, alpha_split, finalist_rule, make_design
    from quantsweep.decide.split import plan_subsets
    from quantsweep.results import Row
    from quantsweep.sweep.search import Probe, within_budget

    st = _STATE
    rng = np.random.default_rng([20261207, seed])
    truth, speed, names = st["truth_delta"], st["speed"], st["candidates"]
    out: dict[str, list[dict[str, Any]]] = {"verdicts": [], "curve": [], "run": [], "k": []}
    alpha_speed = ALPHA * SPEED_SHARE
    for regime, size in (("default", 500), ("small", 80)):
        draw = rng.integers(0, len(st["ids"]), size=size)
        study = _Study(st["tables"], st["ids"], draw, int(rng.integers(2**31)), st["resamples"])
        pseudo = list(range(size))
        classes = {k: st["classes"].get(st["ids"][int(draw[k])], set()) for k in pseudo}
        plan = plan_subsets(pseudo, {} if regime == "default" else classes, 100, 400, 100)
        search, chunks = list(plan.search), [list(c) for c in plan.chunks]
        looks = list(itertools.accumulate(len(c) for c in chunks))
        on_search = {n: study.evidence(n, search) for n in [*names, *st["k_models"].values()]}

        def confirm(chosen: list[str], budget: float, design: Any, every: bool = False, chunks: Any = chunks,
                    study: _Study = study) -> list[Any]:
            return confirm_finalists(chosen, chunks, study.evidence, budget, design, every)

        shrink = (len(search) / looks[-1]) ** 0.5
        k0 = st["k_models"][0]
        for budget in st["budgets"]:
            # the K search of the speed placement on the search subset as a run does it (the grid K = 0, 1,
            # 2, 4, …: the search's geometric phase; its bisection would probe K's between them); a K=0
            # that qualifies gets the hedge probe instead (the K whose nodes carry half the damage)
            accept = within_budget(budget, shrink)

            def probe(k: int, on_search: dict[str, Any] = on_search) -> Probe:
                d, lo, hi, _ = on_search[st["k_models"][k]]
                return Probe(k, d, lo, hi)

            grid = sorted(st["k_models"])
            k = next((g for g in grid if accept(probe(g))), None)
            probes = [st["k_models"][k]] if k else []
            if k == 0 and st["hedge_k"]:
                probes = [st["k_models"][st["hedge_k"]]]
            out["k"].append({"regime": regime, "budget": budget, "k": k, "searched": k != 0,
                             "gain": None if not k else 100 * (truth[st["k_models"][k]] - truth[k0])})
            for rule in RULES:
                for searched in (True, False):
                    rows = [Row("fp32", "fp32", "fp32", backend="x", latency_p50_ms=10.0, speedup_vs_fp32=1.0,
                                delta_map50_95=0.0, label="float")]
                    rows += [Row(n, n, "q", backend="x", latency_p50_ms=10.0 / speed[n], speedup_vs_fp32=speed[n],
                                 delta_map50_95=on_search[n][0], label="accelerated")
                             for n in [*names, *(probes if searched else [])]]
                    chosen = [r.candidate for r in finalists(rows, budget, "x", 3)]
                    pick, used = None, 0
                    if chosen:
                        order = chosen if rule == "bonferroni" else sorted(chosen, key=lambda n: -on_search[n][1])
                        design = make_design(alpha_speed, looks, len(chosen), "obf", st["resamples"], rule)
                        results = confirm(order, budget, design)
                        used = max(c.images for c in results)
                        passed = [c.candidate for c in results if c.verdict == "pass"]
                        pick = max(passed, key=lambda n: speed[n]) if passed else None
                    out["verdicts"].append({"seed": seed, "regime": regime, "budget": budget, "rule": rule,
                                            "searched": searched, "pick": pick,
                                            "false": pick is not None and truth[pick] < -budget / 100, "images": used,
                                            "speed": speed[pick] if pick else None, "finalists": chosen})
        # the power curve: each candidate alone as a finalist, at the speed verdict's α
        single = make_design(alpha_speed, looks, 1, "obf", st["resamples"])
        for budget in CURVE_BUDGETS:
            for n in names:
                c = confirm([n], budget, single)[0]
                out["curve"].append({"regime": regime, "margin": 100 * truth[n] + budget, "passed": c.verdict == "pass"})
        # the run-level error of a --size run: the speed verdict (its adopted rule, at the speed share) and
        # each 4-bit family's K=0 pick when it qualifies on the search subset, at the size share (Bonferroni)
        for budget in st["budgets"]:
            speed_false = next(v["false"] for v in out["verdicts"] if v["regime"] == regime and v["searched"]
                               and v["budget"] == budget and v["rule"] == finalist_rule(len(looks)))
            picks = {n: b for n, b in st["size"].items()
                     if within_budget(b, shrink)(Probe(0, on_search[n][0], on_search[n][1], on_search[n][2]))}
            size_false = False
            if picks:
                design = make_design(alpha_split(ALPHA, len(picks))["size"], looks, len(picks), "obf", st["resamples"])
                for n, b in picks.items():
                    c = confirm([n], b, design, every=True)[0]
                    size_false |= c.verdict == "pass" and truth[n] < -b / 100
            out["run"].append({"regime": regime, "budget": budget, "false": bool(speed_false or size_false),
                               "speed_false": bool(speed_false), "size_false": size_false, "size_picks": len(picks)})
    return out


def _hedge_k(sensitivity: dict[str, Any]) -> int:
    """The hedge probe's K as the search picks it (:func:`quantsweep.sweep.search.half_damage_k`), rounded
    up to the K series; 0 when no few nodes carry half of the damage."""
    from quantsweep.sweep.search import half_damage_k

    k = half_damage_k(sensitivity)[0]
    return next((g for g in K_SERIES if g >= k), K_SERIES[-1]) if k else 0


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) two-sided ``level`` interval of a binomial rate ``k / n``."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def _rate(flags: list[bool]) -> str:
    k, n = sum(flags), len(flags)
    low, high = clopper_pearson(k, n)
    return f"{k / n:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="store_true", help="the demo detector and generator (the only population now)")
    ap.add_argument("--population", type=int, default=2000, help="demo val images that define the truth")
    ap.add_argument("--trials", type=int, default=400, help="simulated studies (each serves every budget and rule)")
    ap.add_argument("--budgets", default="0.5,1.0")
    ap.add_argument("--resamples", type=int, default=200,
                    help="bootstrap resamples for the SE (quantsweep's default is 2000; fewer make the SE noisier, "
                         "which if anything inflates false confirmations: the study is conservative for the default)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", type=Path, default=Path("runs/coverage"))
    ap.add_argument("--out", type=Path, default=None, help="JSON of every trial (default: CACHE/coverage.json)")
    args = ap.parse_args()
    if not args.demo:
        ap.error("only --demo is supported: the truth needs a population thousands of labelled images large")
    from quantsweep.decide.sequential import SPEED_SHARE, finalist_rule
    from quantsweep.sweep.config import SweepConfig

    t0 = time.perf_counter()
    prep = _prepare(args.cache, args.population)
    t_prep = time.perf_counter() - t0
    truth = prep["truth"]
    truth_delta = {n: v - truth["fp32"] for n, v in truth.items()}
    names = list(CANDIDATES)
    order = sorted(names, key=lambda n: truth_delta[n])  # worst first = fastest
    speed = {n: 2.0 - 0.1 * k for k, n in enumerate(order)}
    k_models = {0: K_PLACEMENT, **{k: f"{K_PLACEMENT}-k{k}" for k in K_SERIES}}
    for k in K_SERIES:  # assumed: each doubling of the float-kept nodes costs 2 % of the placement's speed-up
        speed[k_models[k]] = round(speed[K_PLACEMENT] - 0.02 * math.log2(1 + k), 4)
    hedge_k = _hedge_k(prep["sensitivity"])
    cfg = SweepConfig()
    size = {"w4a16-graph": cfg.w4_budget, "w4a8-graph": cfg.w4a8_budget}
    classes: dict[int, set[int]] = {}
    for a in prep["ds"].coco["annotations"]:
        classes.setdefault(int(a["image_id"]), set()).add(int(a["category_id"]))
    budgets = [float(b) for b in args.budgets.split(",")]
    payload = {"gt": prep["ds"].coco, "ids": prep["ids"], "dets": prep["dets"], "truth_delta": truth_delta,
               "speed": speed, "budgets": budgets, "resamples": args.resamples, "classes": classes,
               "cache": args.cache, "candidates": names, "k_models": k_models, "size": size,
               "hedge_k": hedge_k}
    _tables(args.cache, prep["ds"].coco, prep["ids"], prep["dets"])  # once, before the workers read them
    print(f"population: {len(prep['ids'])} demo val images, drawn with replacement (its Δ is the truth); FP32 "
          f"mAP50-95 {truth['fp32']:.4f}; candidates' true Δ (points), fastest first (adversarial order):")
    for n in order:
        print(f"  {n:<16} {100 * truth_delta[n]:+.2f}  ({speed[n]:.1f}× assumed)")
    print(f"  K series of {K_PLACEMENT} (its search's probes; a K=0 that qualifies gets the hedge, K={hedge_k}): "
          + ", ".join(f"K={k} {100 * truth_delta[m]:+.2f} ({speed[m]:.2f}×)" for k, m in k_models.items()))
    t1 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(payload,)) as pool:
        trials = list(pool.map(_trial, range(args.trials), chunksize=2))
    t_sim = time.perf_counter() - t1
    verdicts = [v for t in trials for v in t["verdicts"]]
    adopted = {"default": finalist_rule(4), "small": finalist_rule(1)}  # 4 looks of 100; one look of 40
    alpha_speed = ALPHA * SPEED_SHARE
    print(f"\n{args.trials} independent studies, each at every budget and by both rules; α {ALPHA:g} per run, the "
          f"speed verdict at {SPEED_SHARE:g} α = {alpha_speed:g} one-sided, O'Brien–Fleming spending over the looks, "
          f"SE from {args.resamples} paired resamples (each study its own seed). Rates: [Clopper–Pearson 95 %]\n")
    print("| regime | budget | rule | false-confirmation rate | power | confirmed | pick's speed (assumed) "
          "| confirmation images |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    worst, upper, powers = 0.0, 0.0, []
    for regime in ("default", "small"):
        for budget in budgets:
            good = any(truth_delta[n] >= -budget / 100 + 0.003 for n in names)
            for rule in RULES:
                rs = [v for v in verdicts if v["regime"] == regime and v["budget"] == budget and v["rule"] == rule
                      and v["searched"]]
                false = [v["false"] for v in rs]
                confirmed = [v["pick"] is not None for v in rs]
                if rule == adopted[regime]:
                    worst = max(worst, sum(false) / len(false))
                    upper = max(upper, clopper_pearson(sum(false), len(false))[1])
                    if good:
                        powers.append(sum(confirmed) / len(confirmed))
                sp = [v["speed"] for v in rs if v["speed"]]
                label = "default (100 search + 400 pool)" if regime == "default" else "small (80 images, halves)"
                print(f"| {label} | {budget:g} | {rule}{' (adopted)' if rule == adopted[regime] else ''} | "
                      f"{_rate(false)} | {_rate(confirmed) if good else 'n/a'} | {sum(confirmed) / len(confirmed):.3f} "
                      f"| {np.mean(sp) if sp else float('nan'):.2f}× | {np.mean([v['images'] for v in rs]):.0f} |")
    print(f"\nPower curve: each candidate alone as a finalist (one design, α {alpha_speed:g}), budgets "
          f"{CURVE_BUDGETS[0]:g}…{CURVE_BUDGETS[-1]:g} points; pass rate by true margin = true Δ + budget "
          "(below 0: a false pass)\n")
    print("| true margin (points) | default: tests | default: pass rate | small: tests | small: pass rate |")
    print("|---|---:|---:|---:|---:|")
    curve = [c for t in trials for c in t["curve"]]
    edges = sorted({math.floor(c["margin"] / BIN) for c in curve})
    for e in edges:
        cells = []
        for regime in ("default", "small"):
            fl = [c["passed"] for c in curve if c["regime"] == regime and math.floor(c["margin"] / BIN) == e]
            cells += [str(len(fl)), _rate(fl) if fl else "–"]
        print(f"| [{e * BIN:+.2f}, {(e + 1) * BIN:+.2f}) | " + " | ".join(cells) + " |")
    print(f"\nRun-level error of a --size run: the speed verdict (its adopted rule, {alpha_speed:g}) and the 4-bit size "
          f"verdicts (W4A16 at {cfg.w4_budget:g}, W4A8 at {cfg.w4a8_budget:g} points; {ALPHA - alpha_speed:g} split "
          "over the picks)\n")
    print("| regime | speed budget | any verdict false | speed false | size false | size picks per run |")
    print("|---|---:|---:|---:|---:|---:|")
    runs = [r for t in trials for r in t["run"]]
    for regime in ("default", "small"):
        for budget in budgets:
            rs = [r for r in runs if r["regime"] == regime and r["budget"] == budget]
            any_false = [r["false"] for r in rs]
            upper = max(upper, clopper_pearson(sum(any_false), len(any_false))[1])
            worst = max(worst, sum(any_false) / len(any_false))
            print(f"| {regime} | {budget:g} | {_rate(any_false)} | {_rate([r['speed_false'] for r in rs])} | "
                  f"{_rate([r['size_false'] for r in rs])} | {np.mean([r['size_picks'] for r in rs]):.2f} |")
    print(f"\nThe K search of {K_PLACEMENT} on the search subset (grid K = 0, {', '.join(map(str, K_SERIES))}), and "
          f"the run's verdict (its adopted rule) with its probes among the candidates or without a K search\n")
    print("| regime | budget | searched | K found | truly better than K=0 | truly worse | mean true gain (points) "
          "| confirmed: with the search | without | false: with the search | without |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ks = [r for t in trials for r in t["k"]]
    for regime in ("default", "small"):
        for budget in budgets:
            rs = [r for r in ks if r["regime"] == regime and r["budget"] == budget]
            found = [r for r in rs if r["searched"] and r["k"]]
            better = [r["gain"] > 0.02 for r in found]
            worse = [r["gain"] < -0.02 for r in found]
            runs_by = {searched: [v for v in verdicts if v["regime"] == regime and v["budget"] == budget
                                  and v["rule"] == adopted[regime] and v["searched"] == searched]
                       for searched in (True, False)}
            print(f"| {regime} | {budget:g} | {sum(r['searched'] for r in rs)}/{len(rs)} | {len(found)} | "
                  f"{sum(better)} | {sum(worse)} | {np.mean([r['gain'] for r in found]) if found else float('nan'):+.2f} | "
                  + " | ".join(_rate([v["pick"] is not None for v in runs_by[x]]) for x in (True, False)) + " | "
                  + " | ".join(_rate([v["false"] for v in runs_by[x]]) for x in (True, False)) + " |")
    out = args.out or args.cache / "coverage.json"
    out.write_text(json.dumps({"truth_delta": truth_delta, "speed": speed, "trials": trials}, indent=1))
    print(f"\nwall: prepare {t_prep:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in prep['walls'].items()) or 'cached'}), "
          f"simulation {t_sim:.0f} s on {args.jobs} process(es); total {time.perf_counter() - t0:.0f} s; trials in {out}")
    print(f"coverage: false_confirm_max={worst:.3f} false_confirm_upper={upper:.3f} "
          f"power_mean={np.mean(powers) if powers else float('nan'):.3f} trials={args.trials}")


if __name__ == "__main__":
    main()
