"""Speed: the target runtime (where FP32 is fastest), interleaved benchmarks per backend."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from quantsweep.errors import first_line
from quantsweep.evaluate.run import EvalSettings
from quantsweep.files import atomic_write_json
from quantsweep.ledger import Ledger, Measurement
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.context import Run
from quantsweep.sweep.executors import Executor
from quantsweep.sweep.store import StepStore

__all__ = ['bench_on_backend', 'benchmarks', 'choose_target', 'eval_settings', 'write_bench']

log = logging.getLogger(__name__)


def choose_target(r: StepStore, cfg: SweepConfig, fp32: Path, executor: Executor) -> str | None:
    """The decision's runtime, chosen before any candidate is scored (so each is scored by it):
    ``--target-backend``, else the backend where FP32 runs fastest (``target.json``)."""
    if cfg.target_backend is not None:
        return cfg.target_backend
    from quantsweep.bench.measure import benchmark
    from quantsweep.files import file_hash
    from quantsweep.runtimes import available_runtimes
    from quantsweep.runtimes.base import BenchSettings

    path = r.dir / "target.json"
    backends = list(cfg.backends or available_runtimes())

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
    record = json.loads(path.read_text())
    target: str | None = record["target"]
    precision = next((row.get("evidence", {}).get("inference_precision") for row in record["fp32"]
                      if row.get("backend") == target and not row.get("error")), None)
    ran_as = (f"; it computes the FP32 file in {precision} on this CPU (its default), so FP32 is timed and "
              "scored as it runs there" if precision not in (None, "?", "f32") else "")
    r.on_event({"event": "note", "message": f"target runtime: {target} (FP32 fastest there){ran_as}; "
                f"candidates are scored by it"})
    return target


def eval_settings(cfg: SweepConfig, target: str | None) -> EvalSettings:
    """Evaluation settings scoring as the target runtime computes (ORT CPU when there is none)."""
    from quantsweep.runtimes import get_runtime

    provider = get_runtime(target).provider if target else "cpu"
    return EvalSettings(conf=cfg.conf, iou=cfg.iou, max_det=cfg.max_det, provider=provider)


def bench_on_backend(executor: Executor, cfg: SweepConfig, backend: str, models: list[tuple[str, Path]],
           work: Path, seconds: float | None = None) -> dict[str, Any]:
    """Time ``models`` (FP32 first) interleaved on ``backend``: here, or on a node carrying the
    resource ``--bench-on`` binds it to (one benchmark at a time there); records the node."""
    from quantsweep.bench.measure import benchmark
    from quantsweep.runtimes.base import BenchSettings

    settings = BenchSettings(backends=(backend,), batches=cfg.batches, warmup=cfg.bench_warmup,
                             seconds=cfg.bench_seconds if seconds is None else seconds)
    resources = cfg.bench_resources(backend)
    res, node = executor.call(benchmark, (models, settings, work), resources)
    res["node"] = {**node, "bound_to": resources}
    return dict(res)


def write_bench(path: Path, res: dict[str, Any], name: str) -> None:
    """``name``'s share of a benchmark result: its rows, with the settings, node and environment."""
    atomic_write_json(path, {**{k: v for k, v in res.items() if k != "rows"},
                             "rows": [row for row in res["rows"] if row["candidate"] == name]})


def benchmarks(run: Run, ledger: Ledger) -> Ledger:
    """Every built candidate timed on every backend, interleaved with FP32 (one step per backend);
    returns the measurements (a backend that cannot run is recorded with its error)."""
    from quantsweep.files import file_hash
    from quantsweep.runtimes import available_runtimes

    r, cfg = run.store, run.cfg
    res_dir = r.dir / "results"
    models = [(c.name, c.model_path) for c in ledger.timeable() if c.model_path is not None]
    out = Ledger()
    for backend in cfg.backends or tuple(available_runtimes()):
        outputs = [res_dir / f"{n}.{backend}.bench.json" for n, _ in models]

        def measure(backend: str = backend, outputs: list[Path] = outputs) -> None:
            res = bench_on_backend(run.executor, cfg, backend, models, r.dir / "work" / "bench")
            for (n, _), path in zip(models, outputs):
                write_bench(path, res, n)

        try:
            r.step(f"bench:{backend}", {"models": {n: file_hash(p) for n, p in models},
                                        "batches": list(cfg.batches), "seconds": cfg.bench_seconds}, outputs, measure)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed backend is a row
            out.runtime_failed(backend, str(exc))
            continue
        for (n, _), path in zip(models, outputs):
            out.measure(Measurement(n, backend, json.loads(path.read_text())))
    return out
