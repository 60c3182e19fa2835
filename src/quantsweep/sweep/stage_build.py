"""Build, evaluate and rank: the candidate steps (each through the executor), the sensitivity
rankings, and the re-scoring of collapsed candidates on a reference runtime."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from quantsweep.files import atomic_write_json
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.executors import Executor, LocalExecutor, Task
from quantsweep.sweep.inputs import Inputs
from quantsweep.sweep.store import StepStore

__all__ = ['blame_collapses', 'build_and_evaluate', 'build_task', 'eval_inputs', 'log_to', 'rank_family',
           'sensitivities']

log = logging.getLogger(__name__)


def build_task(r: StepStore, scheme: Any, ctx: Any, ranking: list[dict[str, Any]] | None) -> Any:
    """The manifest step that builds ``scheme`` into ``candidates/`` (its log in ``candidates/logs``)."""
    from quantsweep.files import ModelFile, file_hash
    from quantsweep.quantize.build import candidate_path, materialize
    from quantsweep.schemes import scheme_to_dict

    cand_dir = r.dir / "candidates"
    inputs = {"scheme": scheme_to_dict(scheme), "fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash,
              "ranking": bool(ranking)}
    return Task(f"build:{scheme.name}", lambda: inputs,
                [*ModelFile.of(candidate_path(cand_dir, scheme)).files, cand_dir / f"{scheme.name}.scheme.json"], materialize,
                (scheme, ctx, cand_dir, ranking), cand_dir / "logs" / f"{scheme.name}.log")


def rank_family(fp32: Path, pt: Path | None, calib: Any, family: str, work: Path, images: int, probe_top: int,
                qdq: Path | None, out: Path, reads: tuple[Path, ...] = ()) -> None:
    """One family's sensitivity ranking into ``out`` (a step run through the executor: a Ray task).
    ``reads``: files the ranking opens beside ``qdq`` (its scheme JSON), named so they travel with it.

    Its probes run with as many ONNX Runtime threads as the machine has cores wherever it runs (a
    pool worker's share would change the last bits of its measured errors, and so possibly the order
    of near-tied nodes: the ranking must not depend on ``--jobs``)."""
    from quantsweep.env import physical_cores
    from quantsweep.quantize.ranking import compute_sensitivity

    atomic_write_json(out, compute_sensitivity(fp32, pt, calib, family, work, images, probe_top, qdq,
                                               threads=physical_cores()))


def sensitivities(r: StepStore, cfg: SweepConfig, plan: list[Any], ctx: Any,
                  executor: Executor | None = None) -> dict[str, Any]:
    """One ranking per K-scheme family, each on that family's own fully quantized graph.

    The family's K=0 candidate is built first (its step is shared with the candidate stage) and
    ranked in place, so the ranking costs only its probes; the build and the ranking are one chain of
    steps through the executor (Ray tasks with ``--executor ray``), the ranking written to
    ``work/sensitivity-<family>.json`` and gathered into ``sensitivity.json`` here.
    """
    from quantsweep.files import file_hash
    from quantsweep.quantize.build import candidate_path

    path = r.dir / "sensitivity.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    families = sorted({s.registry for s in plan if s.k > 0})
    for fam in families:
        k0 = next((s for s in plan if s.k == 0 and s.registry == fam), None)
        qdq = candidate_path(r.dir / "candidates", k0) if k0 is not None else None
        out = r.dir / "work" / f"sensitivity-{fam}.json"

        def inputs(qdq: Path | None = qdq) -> dict[str, Any]:  # after the K=0 build: its file is hashed
            return {"fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash, "images": cfg.sensitivity_images,
                    "probe_top": cfg.sensitivity_probe_top, "qdq": file_hash(qdq) if qdq else None}

        rank = Task(f"sensitivity:{fam}", inputs, [out], rank_family,
                    (ctx.fp32_onnx, ctx.source_pt, ctx.calib, fam, r.dir / "work", cfg.sensitivity_images,
                     cfg.sensitivity_probe_top, qdq, out, (qdq.with_suffix(".scheme.json"),) if qdq else ()),
                    r.dir / "candidates" / "logs" / f"sensitivity-{fam}.log")
        failures: list[tuple[Task, BaseException]] = []

        def fail(ci: int, task: Task, exc: BaseException, failures: list[tuple[Task, BaseException]] = failures) -> None:
            failures.append((task, exc))

        chain = ([build_task(r, k0, ctx, None)] if k0 is not None else []) + [rank]
        (executor or LocalExecutor()).run_chains(r, [chain], fail)
        if failures:
            task, exc = failures[0]
            stored[fam] = {"error": (f"its K=0 candidate failed to build: {exc}" if task.step.startswith("build:")
                                     else str(exc))}
        else:
            stored[fam] = json.loads(out.read_text())
        atomic_write_json(path, stored)
    return stored


def log_to(r: StepStore, name: str) -> Any:
    from quantsweep.files import capture_output

    return capture_output(r.dir / "candidates" / "logs" / f"{name}.log")


def eval_inputs(onnx_path: Path, ids: list[int], settings: str) -> dict[str, Any]:
    """An evaluation step's inputs: hashed when the step is checked (its model may be built just before)."""
    from quantsweep.files import file_hash

    return {"onnx": file_hash(onnx_path), "ids": ids, "settings": settings}


def build_and_evaluate(r: StepStore, cfg: SweepConfig, plan: list[Any], ctx: Any, inp: Inputs,
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
            chain.append(build_task(r, scheme, ctx, ranking))
        chain.append(Task(f"eval:{name}", functools.partial(eval_inputs, onnx_path, ids, str(settings)),
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


def blame_collapses(r: StepStore, built: dict[str, Any], inp: Inputs, ids: list[int], executor: Executor,
           settings: Any) -> None:
    """A candidate that collapses on a runtime other than ONNX Runtime CPU is scored once more there,
    with FP32, so the row can say whether the runtime miscomputes the file or the quantization lost it
    (``built[name]["reference"]``: the reference Δ and its provider)."""
    from dataclasses import replace

    from quantsweep.evaluate.run import evaluate
    from quantsweep.files import ModelFile
    from quantsweep.results import collapse_verdict, collapsed_classes
    from quantsweep.runtimes import scorer

    if settings.provider == "cpu":
        return
    base = (built.get("fp32") or {}).get("metrics") or {}
    suspects = []
    for name, e in built.items():
        m = e.get("metrics") or {}
        opens = ModelFile.of(e["onnx"]).format.name in scorer("cpu").formats if e.get("onnx") else False
        if name == "fp32" or e.get("error") or not m or not base or not opens:
            continue
        lost = collapse_verdict(m["map50_95"] - base["map50_95"], None)  # the table's own rule
        if lost or collapsed_classes(m.get("ap_per_class"), base.get("ap_per_class"), m.get("instances_per_class")):
            suspects.append(name)
    if not suspects:
        return
    ref = replace(settings, provider="cpu")
    res_dir = r.dir / "results" / "reference"
    chains = [[Task(f"eval-ref:{n}", functools.partial(eval_inputs, built[n]["onnx"], ids, str(ref)),
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
