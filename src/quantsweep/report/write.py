"""Write a sweep's outputs: ``results/summary.{csv,md,json}``, the plots and ``report.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsweep.files import atomic_write_json, atomic_write_text
from quantsweep.report.decision import Decision, decide, w8a16_verdict
from quantsweep.report.html import write_report
from quantsweep.report.plots import k_curve_plot, pareto_plot
from quantsweep.report.table import COLUMNS, HIGHER_IS_BETTER, Row, summary_rows, to_csv, to_markdown

__all__ = ["read_outputs", "write_outputs"]


def _confidence_intervals(built: dict[str, Any], ds: Any, ids: list[int], resamples: int,
                          seed: int) -> dict[str, tuple[float, float]]:
    import numpy as np

    from quantsweep.evaluate.bootstrap import bootstrap_map

    dets = {}
    for name, e in built.items():
        m = e.get("metrics")
        if e.get("error") is None and m:
            path = Path(m.get("detections_file", ""))
            if m.get("detections_file") and path.is_file():
                dets[name] = json.loads(path.read_text())
    if "fp32" not in dets or resamples < 2:
        return {}
    boot = bootstrap_map(ds.coco, dets, ids, resamples, seed)["map50_95"]
    base = np.asarray(boot["fp32"])
    return {n: (round(float(np.percentile(np.asarray(v) - base, 2.5)), 5),
                round(float(np.percentile(np.asarray(v) - base, 97.5)), 5)) for n, v in boot.items()}


def write_outputs(run_dir: Path, cfg: Any, plan: list[Any], built: dict[str, Any],
                  benches: dict[str, dict[str, Any]], ds: Any, ids: list[int]) -> tuple[list[Row], Decision]:
    """Write ``results/summary.*``, the plots and ``report.html``; return (rows, recommendation)."""
    res = run_dir / "results"
    ci = _confidence_intervals(built, ds, ids, min(cfg.bootstrap, 1000), cfg.seed)
    rows = summary_rows(built, benches, ci)
    decision = decide(rows, cfg.budget, cfg.target_backend)
    rows = decision.mark(rows)
    verdict = w8a16_verdict(rows)
    atomic_write_text(res / "summary.csv", to_csv(rows))
    atomic_write_text(res / "summary.md", to_markdown(rows))
    atomic_write_json(res / "summary.json", {
        "what": "one row per candidate x backend; mAP on the evaluation subset, latency per batch",
        "columns": list(COLUMNS), "higher_is_better": HIGHER_IS_BETTER, "rows": [r.to_dict() for r in rows],
        "recommendation": decision.to_dict(), "w8a16": verdict,
        "bootstrap": {"resamples": min(cfg.bootstrap, 1000), "seed": cfg.seed, "paired": True},
        "budget_points": cfg.budget})
    pareto_plot(rows, res / "pareto.png")
    k_curve_plot(rows, res / "k_curve.png")
    sens_path = run_dir / "sensitivity.json"
    sens = json.loads(sens_path.read_text()) if sens_path.exists() else {}
    write_report(run_dir, cfg, rows, decision, verdict, sens)
    return rows, decision


def read_outputs(run_dir: Path) -> tuple[list[Row], Decision]:
    """The rows and the recommendation a finished report step wrote (``results/summary.json``)."""
    summary = json.loads((run_dir / "results" / "summary.json").read_text())
    return [Row.from_dict(r) for r in summary["rows"]], Decision.from_dict(summary["recommendation"])
