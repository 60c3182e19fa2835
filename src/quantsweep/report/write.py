"""Write a sweep's outputs: ``results/summary.{csv,md,json}``, the plots and ``report.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsweep.deploy.recommended import run_command
from quantsweep.files import ModelFile, atomic_write_json, atomic_write_text
from quantsweep.report.html import write_report
from quantsweep.report.plots import damage_plot, k_curve_plot, kept_float_strip, pareto_plot
from quantsweep.report.profiles import profile_plot, read_profiles
from quantsweep.report.table import COLUMNS, HIGHER_IS_BETTER, to_csv, to_markdown
from quantsweep.results import Decision, Row

__all__ = ["read_outputs", "write_outputs"]


def write_outputs(run_dir: Path, cfg: Any, rows: list[Row], decision: Decision, verdict: dict[str, Any] | None,
                  search_images: int, confirmation: dict[str, Any] | None = None,
                  scored_by: str | None = None, example_image: Path | None = None,
                  changes: dict[str, Any] | None = None) -> tuple[list[Row], Decision]:
    """Write ``results/summary.*``, the plots and ``report.html``; return (rows, decision). The file to ship
    (``recommended/``) is the decision's output, written by :func:`quantsweep.deploy.recommended.hand_back`.

    ``example_image``: a real image (the first confirmation image) the deploy command runs on.
    ``changes``: what the pick and the finalists changed (:mod:`quantsweep.sweep.stage_changes`).

    Presents what :func:`quantsweep.decide.decision.conclude` decided; computes nothing new.
    """
    res = run_dir / "results"
    search_path = run_dir / "search.json"
    search = json.loads(search_path.read_text()) if search_path.exists() else None
    if search and search.get("four_bit") and confirmation and confirmation.get("four_bit"):
        search["four_bit"]["confirmation"] = confirmation["four_bit"]  # the report shows the size picks' verdicts
    atomic_write_text(res / "summary.csv", to_csv(rows))
    atomic_write_text(res / "summary.md", to_markdown(rows))
    atomic_write_json(res / "summary.json", {
        "what": "one row per candidate x backend; mAP on the evaluation subset, latency per batch",
        "columns": list(COLUMNS), "higher_is_better": HIGHER_IS_BETTER, "rows": [r.to_dict() for r in rows],
        "recommendation": decision.to_dict(), "w8a16": verdict, "confirmation": confirmation, "search": search,
        "bootstrap": {"resamples": cfg.bootstrap, "seed": cfg.seed, "paired": True},
        "budget_points": cfg.budget, "search_images": search_images, "scored_by": scored_by,
        "changes": (changes or {}).get("candidates") or {}})
    pareto_plot(rows, res / "pareto.png", cfg.budget, decision.backend)
    shown = next(iter((changes or {}).get("candidates") or {}), None)
    damage = (damage_plot(shown, changes["candidates"][shown], res / "class_damage.png")
              if changes and shown else None)
    if damage is None:
        for stale in (res / "class_damage.png", res / "class_damage.svg"):
            stale.unlink(missing_ok=True)
    k_curve_plot(rows, res / "k_curve.png", decision.backend)
    profile_plot(read_profiles(res, decision.backend), decision, res / "profile.png")
    scheme_path = run_dir / "candidates" / f"{decision.candidate}.scheme.json"
    strip = kept_float_strip(run_dir / "candidates" / "fp32.onnx",
                             json.loads(scheme_path.read_text()) if scheme_path.is_file() else None,
                             res / "kept_float.png")
    if strip is None:
        for stale in (res / "kept_float.png", res / "kept_float.svg"):
            stale.unlink(missing_ok=True)
    sens_path = run_dir / "sensitivity.json"
    sens = json.loads(sens_path.read_text()) if sens_path.exists() else {}
    command = file = None
    if decision.candidate not in (None, "fp32"):
        file = ModelFile.find(run_dir / "candidates", decision.candidate).name
        command = run_command(decision.candidate, decision.backend, file, example_image)
    write_report(run_dir, cfg, rows, decision, verdict, sens, confirmation, search, command, scored_by, file, changes)
    return rows, decision


def read_outputs(run_dir: Path) -> tuple[list[Row], Decision]:
    """The rows and the recommendation a finished report step wrote (``results/summary.json``)."""
    summary = json.loads((run_dir / "results" / "summary.json").read_text())
    return [Row.from_dict(r) for r in summary["rows"]], Decision.from_dict(summary["recommendation"])
