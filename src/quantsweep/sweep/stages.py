"""The sweep's stages, in order: each a function over the run's :class:`StepStore` and config.

Every build and evaluation step (candidates, the rankings' K=0 builds, the search's probes, the
confirmation rounds, reference re-scores) goes to an :class:`~quantsweep.sweep.executors.Executor`;
the rankings' probes, the benchmarks (so their interleaved timings are not disturbed) and the report
run in this process. Each stage is a module: ``stage_build``, ``stage_bench``, ``stage_search``,
``stage_decide``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantsweep.decide.decision import Decision
from quantsweep.decide.split import plan_subsets
from quantsweep.results import Row
from quantsweep.schemes import K_SCHEMES, Scheme
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.context import Run
from quantsweep.sweep.executors import Executor
from quantsweep.sweep.inputs import Inputs
from quantsweep.sweep.stage_bench import benchmarks, choose_target, eval_settings
from quantsweep.sweep.stage_build import blame_collapses, build_and_evaluate, sensitivities
from quantsweep.sweep.stage_decide import confirm, image_classes, report
from quantsweep.sweep.stage_profile import profiles
from quantsweep.sweep.stage_search import search
from quantsweep.sweep.store import StepStore

__all__ = ["RunResult", "execute"]

log = logging.getLogger(__name__)


def _plan(cfg: SweepConfig, onnx_only: bool) -> list[Scheme]:
    """The candidates built up front: every scheme at every K of the grid, or at K=0 for the search."""
    from quantsweep.schemes import make_scheme

    plan: list[Scheme] = []
    for name in cfg.schemes:
        if name in K_SCHEMES:
            plan += [make_scheme(name, onnx_only=onnx_only, k=k) for k in (cfg.ks if cfg.grid else (0,))]
        else:
            plan.append(make_scheme(name, onnx_only=onnx_only))
    if cfg.ablation and "int8-qdq" in cfg.schemes:
        plan.append(make_scheme("int8-qdq-nohead"))
    seen: set[str] = set()
    return [s for s in plan if not (s.name in seen or seen.add(s.name))]  # type: ignore[func-returns-value]


@dataclass
class RunResult:
    """What a sweep produced: its folder, the summary rows and the recommendation."""

    run_dir: Path
    rows: list[Row]
    recommendation: Decision
    stage_seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float | None = None  # this invocation's wall, set by the runner
    cost: dict[str, Any] = field(default_factory=dict)  # seconds by stage (quantsweep.report.cost.by_stage)


def execute(r: StepStore, cfg: SweepConfig, inp: Inputs, executor: Executor) -> RunResult:
    """Run every stage of the sweep in ``r``'s folder (skipping finished ones)."""
    from quantsweep.data.coco import select_ids, write_ids_file
    from quantsweep.files import file_hash
    from quantsweep.model.export import export_onnx
    from quantsweep.model.formats import inspect_model
    from quantsweep.runtimes import available_runtimes
    from quantsweep.schemes import BuildContext

    cand_dir, res_dir = r.dir / "candidates", r.dir / "results"
    cand_dir.mkdir(exist_ok=True)
    res_dir.mkdir(exist_ok=True)
    plan = _plan(cfg, onnx_only=inp.pt is None)
    n_sens = len({s.registry for s in plan if s.k > 0})
    n_backends = len(cfg.backends or available_runtimes())
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
    info = inspect_model(fp32)
    hw = info.hw or (inp.imgsz, inp.imgsz)
    subsets = plan_subsets(list(inp.eval_ds.images), image_classes(inp.eval_ds), cfg.max_images, cfg.confirm_images,
                           cfg.confirm_step, select_ids(inp.eval_ds, cfg.max_images, cfg.image_ids)
                           if cfg.image_ids else None)
    ids, confirm_ids = list(subsets.search), subsets.confirm
    calib = inp.calib_set(cfg.calib_count, hw, ids + confirm_ids)
    for ids_name, values in (("search_ids.txt", ids), ("confirm_ids.txt", confirm_ids), ("calib_ids.txt", calib.ids)):
        if not (r.dir / ids_name).exists():
            write_ids_file(r.dir / ids_name, values)
    if subsets.note:
        r.on_event({"event": "note", "message": subsets.note})
    build = BuildContext(fp32, inp.pt, calib, r.dir / "work", cfg.trust_checkpoint)
    target = choose_target(r, cfg, fp32, executor)
    run = Run(r, cfg, inp, executor, build, eval_settings(cfg, target), target, subsets)
    request_gpus = getattr(executor, "request_gpus", None)  # a cluster places GPU-scored steps on GPU nodes
    if request_gpus is not None:
        from quantsweep.runtimes import scorer

        request_gpus(1 if scorer(run.settings.provider).needs_gpu else 0)
    rankings = sensitivities(run, plan)
    ledger = build_and_evaluate(run, plan, rankings)
    blame_collapses(run, ledger)
    ledger.merge(benchmarks(run, ledger))
    if not cfg.grid:
        ledger.merge(search(run, ledger, plan))
    confirmation = confirm(run, ledger)
    profiles(run, ledger, confirmation)
    rows, recommendation = report(run, ledger, confirmation)
    return RunResult(r.dir, rows, recommendation, r.seconds())
