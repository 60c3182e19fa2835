"""Latency and throughput of candidates against their FP32 reference, measured interleaved.

For every backend x batch, all models are opened, warmed up, then timed in rounds: each round
runs every model once, in a rotating order, so slow drifts of a shared machine hit all models
alike and the speed-up ratios stay fair. A backend that is missing or a model it cannot run is a
row with ``error`` set (label ``unsupported``), never a crash.

Example:
    >>> rows = benchmark([("fp32", Path("m.onnx")), ("int8", Path("q.onnx"))], BenchSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep import __version__
from quantsweep.bench.timing import SPREAD_WARN, speedup_interval, speedup_median, speedup_text, summarize
from quantsweep.env import collect_env
from quantsweep.errors import QuantsweepError, first_line
from quantsweep.runtimes import RUNTIMES, check_runtimes
from quantsweep.runtimes.base import BenchSettings, Prepared, Runtime

__all__ = ["bench_markdown", "benchmark"]

log = logging.getLogger(__name__)


def bench_markdown(result: dict[str, Any], reference: str) -> str:
    """The bench JSON as a Markdown table (what was measured, on what, with which settings)."""
    s, cpu = result["settings"], result["env"]["cpu"]
    lines = [f"latency per batch on {cpu['model']} ({cpu['physical_cores']} cores, VNNI {cpu['vnni']}), "
             f"interleaved rounds, warmup {s['warmup']}; speed-up vs {reference} on the same backend and batch "
             "(median of the rounds' paired ratios; [its 95 % sign-test interval]):",
             "| candidate | backend | batch | label | p50 ms ↓ | p90 ms ↓ | p99 ms ↓ | min ms ↓ | spread ↓ | img/s ↑ "
             "| speed-up ↑ | error |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if r.get("error"):
            lines.append(f"| {r['candidate']} | {r['backend']} | {r['batch']} | {r['label']} | | | | | | | | {r['error']} |")
        else:
            lines.append(f"| {r['candidate']} | {r['backend']} | {r['batch']} | {r['label']} | {r['latency_p50_ms']:.2f} | "
                         f"{r['latency_p90_ms']:.2f} | {r['latency_p99_ms']:.2f} | {r['latency_min_ms']:.2f} | "
                         f"{r['spread']:.0%} | {r['throughput_ips']:.1f} | "
                         f"{speedup_text(r['speedup_vs_fp32'], r.get('speedup_ci95_low'), r.get('speedup_ci95_high'))} | |")
    return "\n".join(lines)


def _cpu_busy() -> float | None:
    try:
        import psutil

        return float(psutil.cpu_percent(interval=0.5))
    except ImportError:
        return None


def benchmark(models: Sequence[tuple[str, Path]], settings: BenchSettings, work_dir: Path | None = None,
              progress: Callable[[str], None] | None = None,
              registry: dict[str, Runtime] | None = None) -> dict[str, Any]:
    """Benchmark ``models`` (the first is the FP32 reference) on every backend x batch.

    Returns:
        The bench JSON: ``rows`` (one per model x backend x batch), ``settings``, ``env``,
        ``warnings``.

    Raises:
        QuantsweepError: no model, or a backend name not in ``registry`` (default :data:`RUNTIMES`).
    """
    if not models:
        raise QuantsweepError("no model to benchmark", "pass --model BASE.onnx [--model CAND.onnx ...]")
    check_runtimes(settings.backends, registry)
    reg = RUNTIMES if registry is None else registry
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    busy = _cpu_busy()
    if busy is not None and busy > 25:
        warnings.append(f"the CPU was {busy:.0f}% busy before measuring: other processes compete; "
                        "compare ratios, not absolute times")
    tmp = tempfile.TemporaryDirectory(prefix="qs-bench-") if work_dir is None else None
    work = Path(tmp.name) if tmp else Path(work_dir)  # type: ignore[arg-type]
    work.mkdir(parents=True, exist_ok=True)
    try:
        for backend_name in settings.backends:
            backend = reg[backend_name]
            group = backend.group(models, work) if backend.unavailable() is None else list(models)
            for batch in settings.batches:
                rows += _measure_group(group, backend, batch, work, settings, warnings, progress)
    finally:
        if tmp:
            tmp.cleanup()
    return {"what": "latency per batch (ms) and throughput (images/s), interleaved rounds",
            "rows": rows, "settings": asdict(settings), "warnings": warnings,
            "env": collect_env(), "quantsweep_version": __version__}


def _measure_group(models: Sequence[tuple[str, Path]], backend: Runtime, batch: int, work: Path,
                   settings: BenchSettings, warnings: list[str],
                   progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    prepared: dict[str, Prepared] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, path in models:
        row: dict[str, Any] = {"candidate": name, "model": str(path), "backend": backend.name, "batch": batch,
                               "label": "unsupported", "error": None}
        rows[name] = row
        try:
            p = prepared[name] = backend.prepare(Path(path), batch, work, settings)
            row.update(label=p.label, evidence=p.evidence, **p.info, dtype="float32")
        except QuantsweepError as exc:
            row["error"] = str(exc)
        except Exception as exc:  # a runtime refusing a model is a row, not a crash
            row["error"] = f"{type(exc).__name__}: {first_line(exc)}"
    live = list(prepared)
    inputs = {n: np.random.default_rng(0).random(tuple(prepared[n].info["input_shape"]), dtype=np.float32)
              for n in live}
    for n in list(live):
        try:
            for _ in range(max(settings.warmup, 1)):
                prepared[n].run(inputs[n])
        except Exception as exc:
            rows[n].update(label="unsupported", error=f"run failed: {type(exc).__name__}: {str(exc)[:200]}")
            live.remove(n)
    samples: dict[str, list[float]] = {n: [] for n in live}
    deadline = time.perf_counter() + settings.seconds * max(len(live), 1)
    rnd = 0
    while live:
        order = live[rnd % len(live):] + live[:rnd % len(live)]
        for n in order:
            t = time.perf_counter()
            prepared[n].run(inputs[n])
            samples[n].append((time.perf_counter() - t) * 1000.0)
        rnd += 1
        if settings.iters is not None:
            if rnd >= settings.iters:
                break
        elif time.perf_counter() >= deadline and rnd >= 5:
            break
    if progress:
        progress(f"{backend.name} batch {batch}: {rnd} rounds")
    ref_name = models[0][0]
    ref = summarize(samples[ref_name], batch) if samples.get(ref_name) else None
    for n, s in samples.items():
        stats = summarize(s, batch)
        rows[n].update(stats)
        # the speed-up: the median of the rounds' paired ratios FP32/candidate, and the sign test's 95 %
        # interval for it (so the point is inside its interval); the reference's own is 1
        paired = ref is not None and n != ref_name and len(s) == len(samples[ref_name])
        rows[n]["speedup_vs_fp32"] = (speedup_median(samples[ref_name], s) if paired else
                                      round(ref["latency_p50_ms"] / stats["latency_p50_ms"], 3) if ref else None)
        ci = speedup_interval(samples[ref_name], s) if paired else None
        rows[n]["speedup_ci95_low"], rows[n]["speedup_ci95_high"] = ci if ci else (None, None)
        if stats["spread"] > SPREAD_WARN:
            warnings.append(f"{n} on {backend.name} batch {batch}: spread {stats['spread']:.0%} exceeds "
                            f"{SPREAD_WARN:.0%}; the machine is noisy")
    return list(rows.values())
