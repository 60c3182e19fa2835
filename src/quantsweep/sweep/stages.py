"""The sweep's stages, in order: each a function over the run's :class:`StepStore` and config.

Build and evaluation steps go to an :class:`~quantsweep.sweep.executors.Executor`; the rankings,
the benchmarks (so their interleaved timings are not disturbed) and the report run in this process.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantsweep.decide.decision import Decision
from quantsweep.decide.split import SubsetPlan, plan_subsets
from quantsweep.errors import QuantsweepError, first_line
from quantsweep.files import atomic_write_json
from quantsweep.report.table import Row
from quantsweep.schemes import K_SCHEMES
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.executors import Executor, LocalExecutor, Task
from quantsweep.sweep.inputs import Inputs
from quantsweep.sweep.store import StepStore

__all__ = ["RunResult", "execute"]

log = logging.getLogger(__name__)


def _plan(cfg: SweepConfig, onnx_only: bool) -> list[Any]:
    """The candidates built up front: every scheme at every K of the grid, or at K=0 for the search."""
    from quantsweep.schemes import make_scheme

    plan: list[Any] = []
    for name in cfg.schemes:
        if name in K_SCHEMES:
            plan += [make_scheme(name, onnx_only=onnx_only, k=k) for k in (cfg.ks if cfg.grid else (0,))]
        else:
            plan.append(make_scheme(name, onnx_only=onnx_only))
    if cfg.ablation and "int8" in cfg.schemes:
        plan.append(make_scheme("int8-nohead"))
    seen: set[str] = set()
    return [s for s in plan if not (s.name in seen or seen.add(s.name))]  # type: ignore[func-returns-value]


@dataclass
class RunResult:
    """What a sweep produced: its folder, the summary rows and the recommendation."""

    run_dir: Path
    rows: list[Row]
    recommendation: Decision
    stage_seconds: dict[str, float] = field(default_factory=dict)


def execute(r: StepStore, cfg: SweepConfig, inp: Inputs, executor: Executor) -> RunResult:
    """Run every stage of the sweep in ``r``'s folder (skipping finished ones)."""
    from quantsweep.bench.registry import available_backends
    from quantsweep.data.coco import select_ids, write_ids_file
    from quantsweep.files import file_hash
    from quantsweep.model.export import export_onnx
    from quantsweep.model.info import inspect_onnx
    from quantsweep.schemes import BuildContext

    cand_dir, res_dir = r.dir / "candidates", r.dir / "results"
    cand_dir.mkdir(exist_ok=True)
    res_dir.mkdir(exist_ok=True)
    plan = _plan(cfg, onnx_only=inp.pt is None)
    n_sens = len({s.registry for s in plan if s.k > 0})
    n_backends = len(cfg.backends or available_backends())
    n_k0 = len({s.registry for s in plan if s.k == 0} & {s.registry for s in plan if s.k > 0})
    n_confirm = (cfg.finalists + 1) * -(-cfg.confirm_images // cfg.confirm_step) if cfg.finalists else 0
    # the search's steps at most: a ranking per placement and a build, evaluation and timing per probe
    n_search = 0 if cfg.grid else len({s.registry for s in plan if s.registry in K_SCHEMES}) + 3 * cfg.max_evals
    # events: baseline, K=0 builds ranked early (seen again later as skips), rankings, a build per
    # candidate, an evaluation per model, a benchmark per backend, confirmation rounds (at most), the report
    r.on_event({"event": "plan", "steps": 2 + n_k0 + n_sens + len(plan) + len(plan) + 1 + n_backends + n_search
                + n_confirm + 1, "candidates": [s.name for s in plan]})
    fp32 = cand_dir / "fp32.onnx"
    r.step("baseline", {"model": file_hash(inp.model), "imgsz": inp.imgsz}, [fp32],
           lambda: export_onnx(inp.model, fp32, imgsz=inp.imgsz, head="e2e",
                               trust_checkpoint=cfg.trust_checkpoint))
    info = inspect_onnx(fp32)
    hw = info.hw or (inp.imgsz, inp.imgsz)
    subsets = plan_subsets(list(inp.eval_ds.images), _classes(inp.eval_ds), cfg.max_images, cfg.confirm_images,
                           cfg.confirm_step, select_ids(inp.eval_ds, cfg.max_images, cfg.image_ids)
                           if cfg.image_ids else None)
    ids, confirm_ids = list(subsets.search), subsets.confirm
    calib = inp.calib_set(cfg.calib_count, hw, ids + confirm_ids)
    for ids_name, values in (("search_ids.txt", ids), ("confirm_ids.txt", confirm_ids), ("calib_ids.txt", calib.ids)):
        if not (r.dir / ids_name).exists():
            write_ids_file(r.dir / ids_name, values)
    if subsets.note:
        r.on_event({"event": "note", "message": subsets.note})
    ctx = BuildContext(fp32, inp.pt, calib, r.dir / "work", cfg.trust_checkpoint)
    target = _target(r, cfg, fp32, executor)
    settings = _eval_settings(cfg, target)
    request_gpus = getattr(executor, "request_gpus", None)  # a cluster places GPU-scored steps on GPU nodes
    if request_gpus is not None:
        request_gpus(1 if settings.provider in ("cuda", "tensorrt") else 0)
    rankings = _sensitivities(r, cfg, plan, ctx)
    built = _build_and_evaluate(r, cfg, plan, ctx, inp, ids, rankings, executor, settings)
    _blame(r, built, inp, ids, executor, settings)
    benches = _benchmarks(r, cfg, built, executor)
    if not cfg.grid:
        _search(r, cfg, plan, ctx, inp, ids, built, benches, executor, len(confirm_ids), target, settings)
    confirmation = _confirm(r, cfg, built, benches, inp, subsets, target, settings)
    rows, recommendation = _report(r, cfg, built, benches, inp, ids, confirmation, target, subsets.note)
    return RunResult(r.dir, rows, recommendation, r.seconds())


def _target(r: StepStore, cfg: SweepConfig, fp32: Path, executor: Executor) -> str | None:
    """The decision's runtime, chosen before any candidate is scored (so each is scored by it):
    ``--target-backend``, else the backend where FP32 runs fastest (``target.json``)."""
    if cfg.target_backend is not None:
        return cfg.target_backend
    from quantsweep.bench.base import BenchSettings
    from quantsweep.bench.measure import benchmark
    from quantsweep.bench.registry import available_backends
    from quantsweep.files import file_hash

    path = r.dir / "target.json"
    backends = list(cfg.backends or available_backends())

    def measure() -> None:
        rows: list[dict[str, Any]] = []
        for b in backends:
            settings = BenchSettings(backends=(b,), batches=(1,), warmup=cfg.bench_warmup,
                                     seconds=min(cfg.bench_seconds, 2.0))
            try:
                res, node = executor.call(benchmark, ([("fp32", fp32)], settings, r.dir / "work" / "bench"),
                                          cfg.bench_resources(b))
                rows += [{**row, "node": node} for row in res["rows"]]
            except Exception as exc:  # noqa: BLE001 - a backend that cannot time FP32 is not the target
                rows.append({"backend": b, "error": first_line(exc)})
        ok = [row for row in rows if not row.get("error") and row.get("latency_p50_ms")]
        choice = min(ok, key=lambda row: row["latency_p50_ms"])["backend"] if ok else None
        atomic_write_json(path, {"what": "the decision's runtime: where FP32 runs fastest, timed before the "
                                 "candidates so that each is scored by that runtime", "target": choice,
                                 "fp32": rows})

    r.step("target", {"fp32": file_hash(fp32), "backends": backends}, [path], measure)
    target: str | None = json.loads(path.read_text())["target"]
    r.on_event({"event": "note", "message": f"target runtime: {target} (FP32 fastest there); "
                f"candidates are scored by it"})
    return target


def _eval_settings(cfg: SweepConfig, target: str | None) -> Any:
    """Evaluation settings scoring as the target runtime computes (ORT CPU when there is none)."""
    from quantsweep.bench.registry import eval_provider
    from quantsweep.evaluate.run import EvalSettings

    return EvalSettings(conf=cfg.conf, iou=cfg.iou, max_det=cfg.max_det, provider=eval_provider(target))


def _search(r: StepStore, cfg: SweepConfig, plan: list[Any], ctx: Any, inp: Inputs, ids: list[int],
            built: dict[str, Any], benches: dict[str, dict[str, Any]], executor: Executor, pool: int,
            target: str | None, settings: Any) -> None:
    """The K search on the target runtime; probes join ``built`` and ``benches``; writes ``search.json``.

    Placements: the K-capable candidates (head policy on) that the target runs ``accelerated``
    and faster than FP32, fastest first. A placement no faster at K=0 than a candidate already
    found within the budget is not searched (restoring float nodes only slows it). Otherwise,
    when its K=0 candidate misses the budget, :func:`quantsweep.sweep.search.search_k` restores
    the ranking's most damaging nodes to float, each probe built, scored on the search subset and
    timed on the target interleaved with FP32 (all steps, so a resumed run replays the same trace).
    A probe qualifies when the lower bound *expected* on the confirmation pool keeps the budget
    (:func:`~quantsweep.sweep.search.within_budget`, shrink ``sqrt(search / pool)``). Placements
    are searched nearest-to-the-budget first (then fastest) and share the ``--max-evals`` cap; one
    whose first two probes close less than a quarter of its gap gives up ("no progress"), so a
    hopeless fast placement cannot starve one that is nearly within the budget.
    """
    import math

    from quantsweep.evaluate.bootstrap import bootstrap_map, delta_interval
    from quantsweep.files import file_hash
    from quantsweep.report.table import summary_rows
    from quantsweep.schemes import make_scheme
    from quantsweep.sweep.search import Probe, search_k, within_budget

    rows = summary_rows(built, benches)
    fp32_metrics = built.get("fp32", {}).get("metrics")
    if target is None or not isinstance(benches.get(target), dict) or "error" in benches[target] or not fp32_metrics:
        return
    on_target = {row.candidate: row for row in rows if row.backend == target}
    shrink = math.sqrt(len(ids) / pool) if pool else 1.0
    accept = within_budget(cfg.budget, shrink)
    res_dir = r.dir / "results"
    boot: dict[str, list[float]] = {}

    def dets(name: str) -> list[dict[str, Any]]:
        return json.loads(Path(built[name]["metrics"]["detections_file"]).read_text())

    def measured(name: str, k: int) -> Probe:
        entry = built.get(name) or {}
        if entry.get("error") or not entry.get("metrics"):
            return Probe(k, None, error=entry.get("error") or "not evaluated")
        if "fp32" not in boot:
            boot["fp32"] = bootstrap_map(inp.eval_ds.coco, {"fp32": dets("fp32")}, ids, cfg.bootstrap,
                                         cfg.seed)["map50_95"]["fp32"]
        cand = bootstrap_map(inp.eval_ds.coco, {name: dets(name)}, ids, cfg.bootstrap, cfg.seed)["map50_95"][name]
        low, high = delta_interval(cand, boot["fp32"])
        return Probe(k, round(entry["metrics"]["map50_95"] - fp32_metrics["map50_95"], 5), low, high)

    def time_on_target(name: str) -> None:
        out = res_dir / f"{name}.{target}.bench.json"
        models = [("fp32", built["fp32"]["onnx"]), (name, built[name]["onnx"])]

        def measure() -> None:  # two models only: a shorter timing gives the ratio with its spread
            res = _bench(executor, cfg, target, models, r.dir / "work" / "bench", min(cfg.bench_seconds, 2.0))
            _write_bench(out, res, name)

        try:
            r.step(f"bench:{target}:{name}", {"models": {n: file_hash(p) for n, p in models},
                                              "batches": list(cfg.batches), "seconds": min(cfg.bench_seconds, 2.0)},
                   [out], measure)
            benches[target][name] = json.loads(out.read_text())
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a probe that cannot be timed is a row with its error
            built[name]["error"] = built[name].get("error") or f"benchmark on {target} failed: {first_line(exc)}"

    def speed(name: str) -> float | None:
        rows_ = (benches[target].get(name) or {}).get("rows") or [{}]
        return rows_[0].get("speedup_vs_fp32")

    trace: list[dict[str, Any]] = []

    def trace_row(fam: str, name: str, p: Probe, kept: list[str]) -> None:
        b = ((benches[target].get(name) or {}).get("rows") or [{}])[0]
        steps = r.seconds()
        trace.append({"placement": fam, "candidate": name, "k": p.k, "kept_float": kept, "delta": p.delta,
                      "low": p.low, "high": p.high,
                      "expected_low": (None if p.delta is None or p.low is None
                                       else round(p.delta - shrink * (p.delta - p.low), 5)),
                      "qualifies": accept(p), "latency_ms": b.get("latency_p50_ms"),
                      "speedup_vs_fp32": b.get("speedup_vs_fp32"), "label": b.get("label"), "error": p.error,
                      "seconds": round(sum(steps.get(f"{what}:{name}", 0.0) for what in ("build", "eval"))
                                       + steps.get(f"bench:{target}:{name}", 0.0), 2)})

    placements = []
    for s0 in plan:
        row0 = on_target.get(s0.name)
        if (s0.k == 0 and s0.registry in K_SCHEMES and s0.head_policy and row0 is not None
                and row0.error is None and row0.label == "accelerated" and (row0.speedup_vs_fp32 or 0.0) > 1.0):
            placements.append((s0, row0))
    # nearest to the budget first (its search is likeliest to pay), then fastest; a placement that
    # makes no progress gives up after two probes, so a hopeless fast one cannot eat the cap
    placements.sort(key=lambda sr: (-(sr[1].delta_map50_95 if sr[1].delta_map50_95 is not None else -1.0),
                                    -(sr[1].speedup_vs_fp32 or 0.0)))
    record: dict[str, Any] = {
        "what": "the K search on the target runtime: every probe built, scored on the search subset and timed",
        "target": target, "budget_points": cfg.budget, "search_images": len(ids), "confirm_pool": pool,
        "rule": (f"a probe qualifies when ΔmAP - {shrink:.2f} × (ΔmAP - interval low) >= -{cfg.budget:g} points: "
                 "the lower bound expected on the confirmation pool"), "shrink": round(shrink, 4),
        "max_evals": cfg.max_evals, "placements": [], "trace": trace}
    best: tuple[str, float] | None = None  # the fastest candidate found within the budget so far
    left = cfg.max_evals
    for s0, row0 in placements:
        fam, k0_speed = s0.registry, row0.speedup_vs_fp32 or 0.0
        item: dict[str, Any] = {"placement": fam, "k0": s0.name, "k0_speedup": k0_speed}
        record["placements"].append(item)
        if best is not None and k0_speed <= best[1]:
            item["stopped"] = (f"not searched: no faster at K=0 ({k0_speed:.2f}× FP32) than {best[0]} "
                               f"({best[1]:.2f}×), already within the budget")
            continue
        p0 = measured(s0.name, 0)
        trace_row(fam, s0.name, p0, [])
        if accept(p0):
            item.update(stopped="qualified at K=0", best=s0.name)
            best = (s0.name, k0_speed) if best is None or k0_speed > best[1] else best
            continue
        if left <= 0:
            item["stopped"] = "not searched: --max-evals reached"
            continue
        sens = _sensitivities(r, cfg, [s0, make_scheme(fam, onnx_only=inp.pt is None, k=1)], ctx).get(fam, {})
        if "ranking" not in sens:
            item["stopped"] = f"not searched: no sensitivity ranking ({sens.get('error', 'not computed')})"
            continue
        ranking = sens["ranking"]

        def evaluate(k: int, s0: Any = s0, fam: str = fam, p0: Probe = p0, ranking: list[Any] = ranking) -> Probe:
            if k == 0:
                return p0
            scheme = make_scheme(fam, onnx_only=inp.pt is None, k=k)
            built.update(_build_and_evaluate(r, cfg, [scheme], ctx, inp, ids, {fam: {"ranking": ranking}},
                                             executor, settings, with_fp32=False))
            if built[scheme.name].get("error") is None:
                time_on_target(scheme.name)
            p = measured(scheme.name, k)
            trace_row(fam, scheme.name, p, [n["node"] for n in ranking[:k]])
            return p

        result = search_k(evaluate, accept, k_max=len(ranking), max_evals=left + 1,
                          target_delta=-cfg.budget / 100)
        left -= result.evaluations - 1
        item["stopped"] = result.stopped
        if result.best is not None:
            name = s0.name if result.best.k == 0 else make_scheme(fam, onnx_only=inp.pt is None, k=result.best.k).name
            item["best"] = name
            sp = speed(name)
            if sp is not None and sp > 1.0 and (best is None or sp > best[1]):
                best = (name, sp)
    # seconds the search's steps took (from the manifest, so a resumed run reports the same)
    steps = r.seconds()
    spent = sum(t["seconds"] for t in trace if t["k"] > 0)
    spent += sum(steps.get(f"sensitivity:{p['placement']}", 0.0) for p in record["placements"]
                 if p.get("stopped", "").startswith(("smallest", "no K", "max_evals")))
    record.update(evaluations=len([t for t in trace if t["k"] > 0]), best=best[0] if best else None,
                  seconds=round(spent, 2))
    atomic_write_json(r.dir / "search.json", record)
    r.on_event({"event": "note", "message": f"search on {target}: {record['evaluations']} probe(s) beyond K=0, "
                f"{record['seconds']:.0f} s; best within the budget on the search subset: {record['best'] or 'none'}"})


def _classes(ds: Any) -> dict[int, set[int]]:
    """Image id -> the categories of its non-crowd boxes (for a class-covering split)."""
    out: dict[int, set[int]] = {}
    for a in ds.coco.get("annotations", []):
        if not a.get("iscrowd", 0):
            out.setdefault(int(a["image_id"]), set()).add(int(a["category_id"]))
    return out


def _confirm(r: StepStore, cfg: SweepConfig, built: dict[str, Any], benches: dict[str, dict[str, Any]],
             inp: Inputs, subsets: SubsetPlan, target: str | None, settings: Any) -> dict[str, Any] | None:
    """The finalists re-scored on the confirmation pool under a design fixed before the first look.

    Finalists: the fastest candidates on the target backend that beat FP32 there with a point
    ΔmAP within the budget on the search subset (:func:`quantsweep.decide.decision.finalists`).
    The design (:mod:`quantsweep.decide.sequential`: looks, α spent over them, Bonferroni over the
    finalists) is written to ``confirmation.json`` with every look's evidence. Each chunk of each
    model (FP32 included) is a step, so an interrupted confirmation resumes.
    """
    chunks = [list(c) for c in subsets.chunks]
    if not chunks:
        return None
    import numpy as np

    from quantsweep.decide.confirm import confirm_finalists, paired_evidence
    from quantsweep.decide.decision import finalists, pick_target
    from quantsweep.decide.sequential import make_design
    from quantsweep.evaluate.bootstrap import bootstrap_map
    from quantsweep.evaluate.metrics import coco_map
    from quantsweep.evaluate.run import evaluate
    from quantsweep.files import file_hash
    from quantsweep.report.table import summary_rows

    rows = summary_rows(built, benches)
    target = pick_target(rows, target)
    chosen = finalists(rows, cfg.budget, target, cfg.finalists)
    looks = list(itertools.accumulate(map(len, chunks)))
    design = make_design(cfg.alpha, looks, max(len(chosen), 1), cfg.alpha_spending, cfg.bootstrap)
    out_dir = r.dir / "results" / "confirm"

    scored: dict[tuple[str, int], list[dict[str, Any]]] = {}  # (model, chunk) -> its detections

    def detections(name: str, upto: int) -> list[dict[str, Any]]:
        for i, chunk in enumerate(chunks[:upto]):
            if (name, i) in scored:
                continue
            metrics = out_dir / f"{name}.c{i}.metrics.json"
            onnx_path = built[name]["onnx"]
            r.step(f"confirm:{name}:{i}", {"onnx": file_hash(onnx_path), "ids": chunk, "settings": str(settings)},
                   [metrics], functools.partial(evaluate, onnx_path, inp.eval_ds, chunk, settings, metrics,
                                                fallback="cpu"))
            scored[name, i] = json.loads(Path(json.loads(metrics.read_text())["detections_file"]).read_text())
        return [d for i in range(upto) for d in scored[name, i]]

    # each model's mAP and bootstrap on each prefix, computed once (the resampled multisets depend
    # only on the number of images and the seed, so FP32's are paired with every finalist's)
    cache: dict[tuple[str, int], tuple[float, np.ndarray]] = {}

    def map_and_resamples(name: str, ids: list[int]) -> tuple[float, np.ndarray]:
        if (name, len(ids)) not in cache:
            dets = detections(name, looks.index(len(ids)) + 1)
            boot = bootstrap_map(inp.eval_ds.coco, {name: dets}, ids, cfg.bootstrap, cfg.seed)["map50_95"][name]
            cache[name, len(ids)] = (coco_map(inp.eval_ds.coco, dets, ids)["map50_95"] or 0.0, np.asarray(boot))
        return cache[name, len(ids)]

    def score(name: str, ids: list[int]) -> tuple[float, float, float, float]:
        (base_map, base_boot), (cand_map, cand_boot) = map_and_resamples("fp32", ids), map_and_resamples(name, ids)
        return paired_evidence(cand_map, base_map, cand_boot, base_boot)

    results = confirm_finalists([row.candidate for row in chosen], chunks, score, cfg.budget, design)
    record = {"what": "finalists re-scored on held-out confirmation images (paired bootstrap vs FP32), fastest "
                      "first until one passes, under a design fixed before the first look",
              "target": target, "budget_points": cfg.budget, "pool": len(subsets.confirm),
              "step": cfg.confirm_step, "design": design.to_dict(),
              "split": {"mode": subsets.mode, "note": subsets.note, "search_images": len(subsets.search)},
              "finalists": [row.candidate for row in chosen], "results": [c.to_dict() for c in results]}
    atomic_write_json(r.dir / "confirmation.json", record)
    return record


def _report(r: StepStore, cfg: SweepConfig, built: dict[str, Any], benches: dict[str, dict[str, Any]],
            inp: Inputs, ids: list[int], confirmation: dict[str, Any] | None, target: str | None,
            note: str | None) -> tuple[list[Row], Decision]:
    """Decide (:func:`quantsweep.decide.decision.conclude`), then write the table, plots and report:
    one manifest step over every result file it reads."""
    from quantsweep.decide.decision import conclude
    from quantsweep.files import file_hash
    from quantsweep.report.write import read_outputs, write_outputs

    sources = sorted((r.dir / "results").glob("*.metrics.json")) + sorted((r.dir / "results").glob("*.bench.json"))
    sources += sorted((r.dir / "results" / "reference").glob("*.metrics.json"))
    sources += [p for p in (r.dir / "sensitivity.json", r.dir / "search.json", r.dir / "confirmation.json")
                if p.exists()]
    inputs = {"files": {str(p.relative_to(r.dir)): file_hash(p) for p in sources},
              "errors": {n: e.get("error") for n, e in built.items()},
              "decision": [cfg.budget, target, cfg.bootstrap, cfg.seed, cfg.alpha, cfg.alpha_spending]}
    res = r.dir / "results"
    outputs = [res / "summary.csv", res / "summary.md", res / "summary.json", res / "pareto.png", res / "pareto.svg",
               res / "k_curve.png", res / "k_curve.svg", r.dir / "report.html"]

    def write() -> tuple[list[Row], Decision]:
        rows, decision, verdict = conclude(built, benches, inp.eval_ds, ids, cfg.budget, cfg.bootstrap, cfg.seed,
                                           confirmation, target or cfg.target_backend, note)
        scored_by = (built.get("fp32", {}).get("metrics") or {}).get("run", {}).get("provider")
        return write_outputs(r.dir, cfg, rows, decision, verdict, len(ids), confirmation, scored_by)

    made = r.step("report", inputs, outputs, write)
    return made if made is not None else read_outputs(r.dir)  # None: finished earlier with the same inputs


def _build_task(r: StepStore, scheme: Any, ctx: Any, ranking: list[dict[str, Any]] | None) -> Any:
    """The manifest step that builds ``scheme`` into ``candidates/`` (its log in ``candidates/logs``)."""
    from quantsweep.files import file_hash
    from quantsweep.model.info import ir_files
    from quantsweep.quantize.build import candidate_path, materialize
    from quantsweep.schemes import scheme_to_dict

    cand_dir = r.dir / "candidates"
    inputs = {"scheme": scheme_to_dict(scheme), "fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash,
              "ranking": bool(ranking)}
    return Task(f"build:{scheme.name}", lambda: inputs,
                [*ir_files(candidate_path(cand_dir, scheme)), cand_dir / f"{scheme.name}.scheme.json"], materialize,
                (scheme, ctx, cand_dir, ranking), cand_dir / "logs" / f"{scheme.name}.log")


def _sensitivities(r: StepStore, cfg: SweepConfig, plan: list[Any], ctx: Any) -> dict[str, Any]:
    """One ranking per K-scheme family, each on that family's own fully quantized graph.

    The family's K=0 candidate is built first (its step is shared with the candidate stage)
    and ranked in place, so the ranking costs only its probes.
    """
    from quantsweep.files import file_hash
    from quantsweep.quantize.build import candidate_path
    from quantsweep.quantize.ranking import compute_sensitivity

    path = r.dir / "sensitivity.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    families = sorted({s.registry for s in plan if s.k > 0})
    for fam in families:
        k0 = next((s for s in plan if s.k == 0 and s.registry == fam), None)
        qdq = None
        if k0 is not None:
            failures: list[BaseException] = []

            def fail(ci: int, task: Task, exc: BaseException, failures: list[BaseException] = failures) -> None:
                failures.append(exc)

            LocalExecutor().run_chains(r, [[_build_task(r, k0, ctx, None)]], fail)
            if failures:
                stored[fam] = {"error": f"its K=0 candidate failed to build: {failures[0]}"}
                continue
            qdq = candidate_path(r.dir / "candidates", k0)

        def compute(fam: str = fam, qdq: Path | None = qdq) -> None:
            with _log_to(r, f"sensitivity-{fam}"):
                result = compute_sensitivity(ctx.fp32_onnx, ctx.source_pt, ctx.calib, fam, r.dir / "work",
                                             cfg.sensitivity_images, cfg.sensitivity_probe_top, qdq)
            stored[fam] = result
            atomic_write_json(path, stored)

        try:
            r.step(f"sensitivity:{fam}", {"fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash,
                                          "images": cfg.sensitivity_images,
                                          "probe_top": cfg.sensitivity_probe_top,
                                          "qdq": file_hash(qdq) if qdq else None}, [path], compute)
        except (QuantsweepError, Exception) as exc:  # noqa: BLE001 - recorded as rows' errors
            stored[fam] = {"error": str(exc)}
    return stored


def _log_to(r: StepStore, name: str) -> Any:
    from quantsweep.files import capture_output

    return capture_output(r.dir / "candidates" / "logs" / f"{name}.log")


def _eval_inputs(onnx_path: Path, ids: list[int], settings: str) -> dict[str, Any]:
    """An evaluation step's inputs: hashed when the step is checked (its model may be built just before)."""
    from quantsweep.files import file_hash

    return {"onnx": file_hash(onnx_path), "ids": ids, "settings": settings}


def _build_and_evaluate(r: StepStore, cfg: SweepConfig, plan: list[Any], ctx: Any, inp: Inputs,
                        ids: list[int], rankings: dict[str, Any], executor: Executor, settings: Any,
                        with_fp32: bool = True) -> dict[str, Any]:
    """Build and evaluate every candidate (and FP32): one chain (build, eval) each, ``cfg.jobs`` at a
    time, scored with ``settings`` (the target runtime's provider; ORT CPU where it cannot run one)."""
    from quantsweep.evaluate.run import evaluate
    from quantsweep.quantize.build import candidate_path

    cand_dir, res_dir = r.dir / "candidates", r.dir / "results"
    built: dict[str, Any] = {}
    chains: list[list[Task]] = []
    owners: list[str] = []
    for name, scheme in [("fp32", None)] * with_fp32 + [(s.name, s) for s in plan]:
        entry: dict[str, Any] = {"name": name, "scheme": scheme, "error": None}
        built[name] = entry
        onnx_path = cand_dir / "fp32.onnx" if scheme is None else candidate_path(cand_dir, scheme)
        metrics = res_dir / f"{name}.metrics.json"
        chain: list[Task] = []
        if scheme is not None:
            fam, ranking = scheme.registry, None
            if scheme.k > 0:
                sens = rankings.get(fam, {})
                if "ranking" not in sens:
                    entry["error"] = f"no sensitivity ranking for {fam}: {sens.get('error', 'not computed')}"
                    continue
                ranking = sens["ranking"]
            chain.append(_build_task(r, scheme, ctx, ranking))
        chain.append(Task(f"eval:{name}", functools.partial(_eval_inputs, onnx_path, ids, str(settings)),
                          [metrics], evaluate, (onnx_path, inp.eval_ds, ids, settings, metrics, None,
                                                cfg.eval_shards, executor.shard_map, "cpu")))
        entry["onnx"] = onnx_path
        chains.append(chain)
        owners.append(name)

    def failed(ci: int, task: Task, exc: BaseException) -> None:
        what = "build failed" if task.step.startswith("build:") else "evaluation failed"
        built[owners[ci]]["error"] = f"{what}: {exc}"
        if task.step.startswith("build:"):
            built[owners[ci]].pop("onnx", None)

    executor.run_chains(r, chains, failed)
    for name in owners:
        metrics = res_dir / f"{name}.metrics.json"
        if built[name]["error"] is None and metrics.exists():
            built[name]["metrics"] = json.loads(metrics.read_text())
    return built


def _blame(r: StepStore, built: dict[str, Any], inp: Inputs, ids: list[int], executor: Executor,
           settings: Any) -> None:
    """A candidate that collapses on a runtime other than ONNX Runtime CPU is scored once more there,
    with FP32, so the row can say whether the runtime miscomputes the file or the quantization lost it
    (``built[name]["reference"]``: the reference Δ and its provider)."""
    from dataclasses import replace

    from quantsweep.evaluate.run import evaluate
    from quantsweep.model.info import is_ir
    from quantsweep.report.table import COLLAPSE_POINTS, collapsed_classes

    if settings.provider == "cpu":
        return
    base = (built.get("fp32") or {}).get("metrics") or {}
    suspects = []
    for name, e in built.items():
        m = e.get("metrics") or {}
        if name == "fp32" or e.get("error") or not m or not base or is_ir(Path(e["onnx"])):
            continue
        lost = base["map50_95"] - m["map50_95"] > COLLAPSE_POINTS / 100
        if lost or collapsed_classes(m.get("ap_per_class"), base.get("ap_per_class"), m.get("instances_per_class")):
            suspects.append(name)
    if not suspects:
        return
    ref = replace(settings, provider="cpu")
    res_dir = r.dir / "results" / "reference"
    chains = [[Task(f"eval-ref:{n}", functools.partial(_eval_inputs, built[n]["onnx"], ids, str(ref)),
                    [res_dir / f"{n}.metrics.json"], evaluate,
                    (built[n]["onnx"], inp.eval_ds, ids, ref, res_dir / f"{n}.metrics.json"))]
              for n in ["fp32", *suspects]]
    failed: list[str] = []
    executor.run_chains(r, chains, lambda ci, task, exc: failed.append(task.step))
    if "eval-ref:fp32" in failed:
        return
    ref_base = json.loads((res_dir / "fp32.metrics.json").read_text())["map50_95"]
    for n in suspects:
        if f"eval-ref:{n}" not in failed:
            m = json.loads((res_dir / f"{n}.metrics.json").read_text())
            built[n]["reference"] = {"provider": "ONNX Runtime CPU", "delta": round(m["map50_95"] - ref_base, 5)}


def _bench(executor: Executor, cfg: SweepConfig, backend: str, models: list[tuple[str, Path]],
           work: Path, seconds: float | None = None) -> dict[str, Any]:
    """Time ``models`` (FP32 first) interleaved on ``backend``: here, or on a node carrying the
    resource ``--bench-on`` binds it to (one benchmark at a time there); records the node."""
    from quantsweep.bench.base import BenchSettings
    from quantsweep.bench.measure import benchmark

    settings = BenchSettings(backends=(backend,), batches=cfg.batches, warmup=cfg.bench_warmup,
                             seconds=cfg.bench_seconds if seconds is None else seconds)
    resources = cfg.bench_resources(backend)
    res, node = executor.call(benchmark, (models, settings, work), resources)
    res["node"] = {**node, "bound_to": resources}
    return dict(res)


def _write_bench(path: Path, res: dict[str, Any], name: str) -> None:
    """``name``'s share of a benchmark result: its rows, with the settings, node and environment."""
    atomic_write_json(path, {**{k: v for k, v in res.items() if k != "rows"},
                             "rows": [row for row in res["rows"] if row["candidate"] == name]})


def _benchmarks(r: StepStore, cfg: SweepConfig, built: dict[str, Any],
                executor: Executor) -> dict[str, dict[str, Any]]:
    from quantsweep.bench.registry import available_backends
    from quantsweep.files import file_hash

    res_dir = r.dir / "results"
    models = [(n, e["onnx"]) for n, e in built.items() if e.get("onnx") and e.get("error") is None]
    out: dict[str, dict[str, Any]] = {}
    backends = cfg.backends or tuple(available_backends())
    for backend in backends:
        outputs = [res_dir / f"{n}.{backend}.bench.json" for n, _ in models]

        def measure(backend: str = backend, outputs: list[Path] = outputs) -> None:
            res = _bench(executor, cfg, backend, models, r.dir / "work" / "bench")
            for (n, _), path in zip(models, outputs):
                _write_bench(path, res, n)

        try:
            r.step(f"bench:{backend}", {"models": {n: file_hash(p) for n, p in models},
                                        "batches": list(cfg.batches), "seconds": cfg.bench_seconds}, outputs, measure)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed backend is a row
            out[backend] = {"error": str(exc)}
            continue
        out[backend] = {n: json.loads(p.read_text()) for (n, _), p in zip(models, outputs)}
    return out
