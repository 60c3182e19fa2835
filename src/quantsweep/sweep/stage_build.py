"""Build, evaluate and rank: the candidate steps (each through the executor), the sensitivity
rankings, and the re-scoring of collapsed candidates on a reference runtime."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsweep.files import atomic_write_json
from quantsweep.ledger import Candidate, Ledger
from quantsweep.schemes import BuildContext, Scheme
from quantsweep.sweep.context import Ranking, Rankings, Run
from quantsweep.sweep.executors import Task
from quantsweep.sweep.store import StepStore

__all__ = ['RankJob', 'blame_collapses', 'build_and_evaluate', 'build_task', 'eval_inputs', 'rank_family',
           'sensitivities']

log = logging.getLogger(__name__)


def build_task(r: StepStore, scheme: Scheme, ctx: BuildContext, ranking: list[dict[str, Any]] | None) -> Task:
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


@dataclass(frozen=True)
class RankJob:
    """One family's sensitivity ranking, as a step that travels to the executor (a Ray task).

    Attributes:
        build: the build context (FP32 file, checkpoint, calibration images).
        family: the registry name ranked.
        images: calibration images the probes score (``--sensitivity-images``).
        probe_top: how many nodes are probed (``--sensitivity-probe-top``).
        qdq: the family's K=0 file ranked in place (None: the ranking builds its own).
        out: where the ranking is written.
        reads: files the ranking opens beside ``qdq`` (its scheme JSON), named so they travel with it.
    """

    build: BuildContext
    family: str
    images: int
    probe_top: int
    qdq: Path | None
    out: Path
    reads: tuple[Path, ...] = ()


def rank_family(job: RankJob, work: Path) -> None:
    """One family's sensitivity ranking into ``job.out`` (a step run through the executor).

    Its probes run with as many ONNX Runtime threads as the machine has cores wherever it runs (a
    pool worker's share would change the last bits of its measured errors, and so possibly the order
    of near-tied nodes: the ranking must not depend on ``--jobs``)."""
    from quantsweep.env import physical_cores
    from quantsweep.quantize.ranking import compute_sensitivity

    b = job.build
    atomic_write_json(job.out, compute_sensitivity(b.fp32_onnx, b.source_pt, b.calib, job.family, work, job.images,
                                                   job.probe_top, job.qdq, threads=physical_cores()))


def _record_failure(failures: list[tuple[Task, BaseException]], ci: int, task: Task, exc: BaseException) -> None:
    failures.append((task, exc))


def sensitivities(run: Run, plan: list[Scheme]) -> Rankings:
    """One ranking per K-scheme family, each on that family's own fully quantized graph.

    The family's K=0 candidate is built first (its step is shared with the candidate stage) and
    ranked in place, so the ranking costs only its probes; the build and the ranking are one chain of
    steps through the executor (Ray tasks with ``--executor ray``), the ranking written to
    ``work/sensitivity-<family>.json`` and gathered into ``sensitivity.json`` here.
    """
    from quantsweep.files import file_hash
    from quantsweep.quantize.build import candidate_path

    r, cfg, ctx = run.store, run.cfg, run.build
    path = r.dir / "sensitivity.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    families = sorted({s.registry for s in plan if s.k > 0})
    for fam in families:
        k0 = next((s for s in plan if s.k == 0 and s.registry == fam), None)
        qdq = candidate_path(r.dir / "candidates", k0) if k0 is not None else None
        job = RankJob(ctx, fam, cfg.sensitivity_images, cfg.sensitivity_probe_top, qdq,
                      r.dir / "work" / f"sensitivity-{fam}.json", (qdq.with_suffix(".scheme.json"),) if qdq else ())

        def inputs(qdq: Path | None = qdq) -> dict[str, Any]:  # after the K=0 build: its file is hashed
            return {"fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash, "images": cfg.sensitivity_images,
                    "probe_top": cfg.sensitivity_probe_top, "qdq": file_hash(qdq) if qdq else None}

        rank = Task(f"sensitivity:{fam}", inputs, [job.out], rank_family, (job, r.dir / "work"),
                    r.dir / "candidates" / "logs" / f"sensitivity-{fam}.log")
        failures: list[tuple[Task, BaseException]] = []
        chain = ([build_task(r, k0, ctx, None)] if k0 is not None else []) + [rank]
        run.executor.run_chains(r, [chain], functools.partial(_record_failure, failures))
        if failures:
            task, exc = failures[0]
            stored[fam] = {"error": (f"its K=0 candidate failed to build: {exc}" if task.step.startswith("build:")
                                     else str(exc))}
        else:
            stored[fam] = json.loads(job.out.read_text())
        atomic_write_json(path, stored)
    return {fam: Ranking(fam, rec) for fam, rec in stored.items()}


def eval_inputs(model_path: Path, ids: list[int], settings: str) -> dict[str, Any]:
    """An evaluation step's inputs: hashed when the step is checked (its model may be built just before)."""
    from quantsweep.files import file_hash

    return {"onnx": file_hash(model_path), "ids": ids, "settings": settings}


def build_and_evaluate(run: Run, plan: list[Scheme], rankings: Rankings, with_fp32: bool = True) -> Ledger:
    """Build and evaluate every candidate (and FP32): one chain (build, eval) each, ``cfg.jobs`` at a
    time, scored with ``run.settings`` (the target runtime's provider; ORT CPU where it cannot run one).
    Returns the candidates made, each with its metrics or its error."""
    from quantsweep.evaluate.run import evaluate
    from quantsweep.quantize.build import candidate_path

    r, settings = run.store, run.settings
    cand_dir, res_dir = r.dir / "candidates", r.dir / "results"
    made = Ledger()
    chains: list[list[Task]] = []
    owners: list[Candidate] = []
    for name, scheme in [("fp32", None)] * with_fp32 + [(s.name, s) for s in plan]:
        path = cand_dir / "fp32.onnx" if scheme is None else candidate_path(cand_dir, scheme)
        cand = made.add(Candidate(name, scheme))
        metrics = res_dir / f"{name}.metrics.json"
        chain: list[Task] = []
        if scheme is not None:
            nodes = None
            if scheme.k > 0:
                ranking = rankings.get(scheme.registry) or Ranking(scheme.registry, {})
                nodes = ranking.nodes
                if nodes is None:
                    cand.fail(f"no sensitivity ranking for {scheme.registry}: {ranking.error}")
                    continue
            chain.append(build_task(r, scheme, run.build, nodes))
        chain.append(Task(f"eval:{name}", functools.partial(eval_inputs, path, run.ids, str(settings)),
                          [metrics], evaluate, (path, run.inp.eval_ds, run.ids, settings, metrics, None,
                                                run.cfg.eval_shards, run.executor.shard_map, "cpu")))
        cand.model_path = path
        chains.append(chain)
        owners.append(cand)

    def failed(ci: int, task: Task, exc: BaseException) -> None:
        built = task.step.startswith("build:")
        owners[ci].fail(f"{'build failed' if built else 'evaluation failed'}: {exc}", drop_file=built)

    run.executor.run_chains(r, chains, failed)
    for cand in owners:
        metrics = res_dir / f"{cand.name}.metrics.json"
        if cand.error is None and metrics.exists():
            cand.metrics = json.loads(metrics.read_text())
    return made


def blame_collapses(run: Run, ledger: Ledger) -> None:
    """A candidate that collapses on a runtime other than ONNX Runtime CPU is scored once more there,
    with FP32, so the row can say whether the runtime miscomputes the file or the quantization lost it
    (the candidate's ``reference``: the reference Δ and its provider)."""
    from dataclasses import replace

    from quantsweep.evaluate.run import evaluate
    from quantsweep.files import ModelFile
    from quantsweep.results import collapse_verdict, collapsed_classes
    from quantsweep.runtimes import scorer

    r, ids = run.store, run.ids
    fp32 = ledger.fp32
    if run.settings.provider == "cpu" or fp32 is None or not fp32.metrics:
        return
    base = fp32.metrics
    suspects: list[Candidate] = []
    for c in ledger:
        m = c.metrics or {}
        opens = c.model_path is not None and ModelFile.of(c.model_path).format.name in scorer("cpu").formats
        if c is fp32 or c.error or not m or not opens:
            continue
        lost = collapse_verdict(m["map50_95"] - base["map50_95"], None)  # the table's own rule
        if lost or collapsed_classes(m.get("ap_per_class"), base.get("ap_per_class"), m.get("instances_per_class")):
            suspects.append(c)
    if not suspects:
        return
    ref = replace(run.settings, provider="cpu")
    res_dir = r.dir / "results" / "reference"
    chains = [[Task(f"eval-ref:{c.name}", functools.partial(eval_inputs, c.path, ids, str(ref)),
                    [res_dir / f"{c.name}.metrics.json"], evaluate,
                    (c.path, run.inp.eval_ds, ids, ref, res_dir / f"{c.name}.metrics.json"))]
              for c in [fp32, *suspects]]
    failed: list[str] = []
    run.executor.run_chains(r, chains, lambda ci, task, exc: failed.append(task.step))
    if "eval-ref:fp32" in failed:
        return
    ref_base = json.loads((res_dir / "fp32.metrics.json").read_text())["map50_95"]
    for c in suspects:
        if f"eval-ref:{c.name}" not in failed:
            m = json.loads((res_dir / f"{c.name}.metrics.json").read_text())
            c.reference = {"provider": "ONNX Runtime CPU", "delta": round(m["map50_95"] - ref_base, 5)}
