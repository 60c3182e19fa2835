"""Run or resume a sweep: one run folder, written only through its :class:`StepStore`.

Stages: baseline -> target runtime -> candidates (K=0, or the whole grid with ``--grid``) -> evaluation ->
benchmark -> search (K per placement on the target runtime) -> confirmation -> report
(:mod:`quantsweep.sweep.stages`). The run folder's layout::

    runs/<model>/<run-id>/
      config.yaml              resolved settings (written first; a resume must match it)
      env.json                 versions, CPU/GPU, providers, git hash (written first)
      manifest.json            every step's state, input hash and outputs (resume uses it)
      .lock                    held while a process writes this folder
      search_ids.txt           search subset: every candidate is scored on these (first N, or --image-ids)
      confirm_ids.txt          confirmation pool: the next ids (or the second half of a small set), disjoint
      calib_ids.txt            calibration image ids (disjoint from both)
      target.json              the decision's runtime (FP32 fastest there), chosen before scoring:
                               every candidate is scored by that runtime (ORT CPU where it cannot run one)
      sensitivity.json         per K-scheme ranking of nodes (see quantsweep.quantize.sensitivity)
      search.json              the search's placements, why each stopped, and every probe (the trace)
      candidates/<name>.onnx   fp32 baseline and every candidate
      candidates/<name>.scheme.json
      candidates/logs/<name>.log   library output of each build
      results/<name>.metrics.json  COCO metrics (+ .ids.txt, .detections.json)
      results/<name>.<backend>.bench.json   (a search probe: timed on the target with FP32 only)
      results/confirm/<name>.c<i>.metrics.json   finalists (and FP32) on confirmation chunk i
      confirmation.json        the design fixed before the first look; each finalist's looks and verdict
      results/reference/       collapsed candidates re-scored on ONNX Runtime CPU (runtime or quantization?)
      results/summary.csv|md|json
      results/pareto.png|svg   ΔmAP (interval) vs speed-up per runtime, the budget band, the front
      results/k_curve.png|svg  ΔmAP and speed-up against K per placement
      results/kept_float.png|svg  where the recommended model's float-kept nodes sit (when one is chosen)
      report.html              self-contained report (images embedded; its footer: seconds by stage)
      cost.json                seconds of the steps by stage, and each invocation's wall (a resume adds one)
      recommended/             the chosen model, its scheme JSON and how to run it (absent: stay on FP32)

Every file is written atomically; a finished step is never redone or overwritten on resume; a
failed candidate or backend is a row with ``error`` set and the sweep goes on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantsweep.env import collect_env
from quantsweep.errors import QuantsweepError
from quantsweep.files import atomic_write_json, atomic_write_text
from quantsweep.sweep.choose import make_executor
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.executors import effective_jobs
from quantsweep.sweep.inputs import model_label, resolve_inputs
from quantsweep.sweep.stages import RunResult, execute
from quantsweep.sweep.store import Event, StepStore

__all__ = ["RunResult", "open_run", "run_sweep"]


def open_run(cfg: SweepConfig, run_dir: Path, on_event: Event | None = None) -> StepStore:
    """The step store of an existing run folder, refused when it was made with other settings.

    Raises:
        QuantsweepError: not a run folder, or its ``config.yaml`` decides results differently.
    """
    run_dir = Path(run_dir)
    stored = run_dir / "config.yaml"
    if not stored.is_file():
        raise QuantsweepError(f"{run_dir} is not a quantsweep run folder (no config.yaml)",
                              "pass --resume with a folder printed by quantsweep run")
    old = SweepConfig.resolve(yaml_path=stored).result_key()
    new = cfg.result_key()
    if old != new:
        diff = sorted(k for k, v in new.items() if old.get(k) != v)
        raise QuantsweepError(f"resume {run_dir}: that run used different settings ({', '.join(diff)})",
                              "resume with the same settings (or none: they are read from config.yaml), "
                              "or start a new run")
    return StepStore(run_dir, on_event)


def record_cost(run_dir: Path, started: str, wall_s: float) -> dict[str, Any]:
    """Append this invocation's wall to ``cost.json`` with the steps' seconds by stage; return it.

    A log of what each invocation of the run took (a resumed run adds a line), not a result."""
    from quantsweep.report.cost import read_cost

    cost = read_cost(run_dir)
    cost["invocations"] = [*cost.get("invocations", []), {"started": started, "wall_s": wall_s}]
    atomic_write_json(run_dir / "cost.json", cost)
    return cost


def run_sweep(cfg: SweepConfig, resume: Path | None = None, on_event: Event | None = None) -> RunResult:
    """Run (or resume) a whole sweep; the Python API of ``quantsweep run``.

    Example:
        >>> result = run_sweep(SweepConfig())  # doctest: +SKIP  (the embedded demo)
        >>> result.recommendation.candidate  # doctest: +SKIP
    """
    if cfg.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise QuantsweepError("--executor ray needs Ray, which is not installed", "pip install 'quantsweep[ray]'",
                                  "executor")
    started, t0 = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), time.perf_counter()
    inputs = resolve_inputs(cfg)  # bad inputs fail before a run folder is created or locked
    if resume is not None:
        store = open_run(cfg, resume, on_event)
    else:
        store = StepStore.create(cfg.out / model_label(cfg), on_event)
        atomic_write_text(store.dir / "config.yaml", cfg.to_yaml())
        atomic_write_json(store.dir / "env.json", collect_env())
    store.on_event({"event": "run_dir", "path": str(store.dir)})
    jobs, why = effective_jobs(cfg.jobs)
    if why:
        store.on_event({"event": "note", "message": why})
    executor = make_executor(jobs, cfg.executor, cfg.ray_address, cfg.shared_dir)
    try:
        with store.locked():
            result = execute(store, cfg, inputs, executor)
            result.wall_s = round(time.perf_counter() - t0, 1)
            result.cost = record_cost(store.dir, started, result.wall_s)
            stats = getattr(executor, "stats", None)
            if stats is not None:  # where the steps ran and what travelled (a description, like env.json)
                atomic_write_json(store.dir / "executor.json", stats())
            return result
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
