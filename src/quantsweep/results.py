"""The consolidated table, the Pareto front, the recommendation and the W8A16 verdict.

Pure functions over the sweep's per-candidate metrics and bench JSON, plus the writers of
``results/summary.{csv,md,json}``. Each column declares once whether higher is better.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from quantsweep.files import atomic_write_json, atomic_write_text

__all__ = ["COLUMNS", "HIGHER_IS_BETTER", "decide", "pareto_flags", "summary_rows", "w8a16_verdict",
           "write_outputs"]

COLUMNS = ("candidate", "scheme", "precision", "k", "backend", "label", "size_mb", "map50_95", "map50",
           "delta_map50_95", "delta_ci95_low", "delta_ci95_high", "latency_p50_ms", "latency_p90_ms",
           "throughput_ips", "speedup_vs_fp32", "pareto", "recommended", "error")
HIGHER_IS_BETTER = {"size_mb": False, "map50_95": True, "map50": True, "delta_map50_95": True,
                    "delta_ci95_low": True, "delta_ci95_high": True, "latency_p50_ms": False,
                    "latency_p90_ms": False, "throughput_ips": True, "speedup_vs_fp32": True}
W8A16_SUSPECT_POINTS = 1.0


def summary_rows(built: dict[str, Any], benches: dict[str, dict[str, Any]],
                 ci: dict[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """One row per candidate x backend (a candidate with no bench row still gets one row)."""
    base = (built.get("fp32", {}).get("metrics") or {}).get("map50_95")
    rows = []
    for name, entry in built.items():
        scheme = entry.get("scheme")
        metrics = entry.get("metrics") or {}
        onnx = entry.get("onnx")
        common = {
            "candidate": name,
            "scheme": "fp32" if scheme is None else scheme.family,
            "precision": "fp32" if scheme is None else scheme.precision,
            "k": 0 if scheme is None else scheme.k,
            "size_mb": round(Path(onnx).stat().st_size / 1e6, 3) if onnx and Path(onnx).exists() else None,
            "map50_95": metrics.get("map50_95"), "map50": metrics.get("map50"),
            "delta_map50_95": (round(metrics["map50_95"] - base, 5)
                               if base is not None and metrics.get("map50_95") is not None else None),
            "delta_ci95_low": None, "delta_ci95_high": None,
            "ablation": scheme is not None and not scheme.head_policy,
        }
        if ci and name in ci:
            common["delta_ci95_low"], common["delta_ci95_high"] = ci[name]
        per_backend = []
        for backend, res in benches.items():
            if "error" in res and isinstance(res["error"], str):
                per_backend.append({"backend": backend, "label": "unsupported", "error": res["error"]})
                continue
            bench_rows = (res.get(name) or {}).get("rows") or []
            for b in bench_rows:
                per_backend.append({"backend": backend, "label": b.get("label"), "error": b.get("error"),
                                    "latency_p50_ms": b.get("latency_p50_ms"),
                                    "latency_p90_ms": b.get("latency_p90_ms"),
                                    "throughput_ips": b.get("throughput_ips"),
                                    "speedup_vs_fp32": b.get("speedup_vs_fp32"), "batch": b.get("batch")})
        if not per_backend:
            per_backend = [{"backend": None, "label": None}]
        for pb in per_backend:
            row = {c: None for c in COLUMNS}
            row.update(common)
            row.update(pb)
            row["error"] = entry.get("error") or pb.get("error")
            row["pareto"] = False
            row["recommended"] = False
            rows.append(row)
    pareto_flags(rows)
    return rows


def pareto_flags(rows: list[dict[str, Any]]) -> None:
    """Mark rows on the accuracy (↑) / p50 latency (↓) Pareto front of their backend."""
    ok = [r for r in rows if r.get("error") is None and r.get("latency_p50_ms") is not None
          and r.get("map50_95") is not None]
    for r in ok:
        r["pareto"] = not any(
            o is not r and o["backend"] == r["backend"]
            and o["latency_p50_ms"] <= r["latency_p50_ms"] and o["map50_95"] >= r["map50_95"]
            and (o["latency_p50_ms"] < r["latency_p50_ms"] or o["map50_95"] > r["map50_95"])
            for o in ok)


def decide(rows: list[dict[str, Any]], budget_points: float, target_backend: str | None = None) -> dict[str, Any]:
    """The fastest candidate on the target backend whose ΔmAP CI lower bound is within the budget.

    The target backend defaults to the one where the FP32 reference is fastest. Marks the chosen
    row ``recommended`` and returns the decision with its reason.
    """
    measured = [r for r in rows if r.get("error") is None and r.get("latency_p50_ms") is not None]
    if not measured:
        return {"candidate": None, "reason": "no candidate was benchmarked successfully"}
    if target_backend is None:
        fp32_rows = [r for r in measured if r["candidate"] == "fp32"]
        target_backend = min(fp32_rows or measured, key=lambda r: r["latency_p50_ms"])["backend"]
    on_target = [r for r in measured if r["backend"] == target_backend]
    budget = budget_points / 100.0

    def low(r: dict[str, Any]) -> float | None:
        return r["delta_ci95_low"] if r.get("delta_ci95_low") is not None else r.get("delta_map50_95")

    fp32 = next((r for r in on_target if r["candidate"] == "fp32"), None)
    # ablation rows (head policy off) are diagnostics, not deployment candidates
    eligible = [r for r in on_target if r["candidate"] != "fp32" and not r.get("ablation")]
    qualifying = [r for r in eligible if low(r) is not None and low(r) >= -budget]
    faster = [r for r in qualifying if fp32 is None or r["latency_p50_ms"] < fp32["latency_p50_ms"]]
    if faster:
        best = min(faster, key=lambda r: r["latency_p50_ms"])
        best["recommended"] = True
        return {"candidate": best["candidate"], "backend": target_backend,
                "reason": (f"fastest on {target_backend} ({best['latency_p50_ms']:.2f} ms p50, "
                           f"{best['speedup_vs_fp32']:.2f}× FP32, {best['label']}) among candidates whose "
                           f"ΔmAP50-95 95% CI lower bound ({100 * low(best):+.2f} points) is within the "
                           f"{budget_points:.2f}-point budget"),
                "row": best}
    reason = (f"no candidate on {target_backend} is both faster than FP32 and within the "
              f"{budget_points:.2f}-point budget")
    speedier = [r for r in eligible if low(r) is not None and r not in qualifying
                and (fp32 is None or r["latency_p50_ms"] < fp32["latency_p50_ms"])]
    near = max(speedier, key=low, default=None)  # the faster candidate that misses the budget least
    if near is not None:
        reason += (f"; closest: {near['candidate']} ({near.get('speedup_vs_fp32') or float('nan'):.2f}× FP32, CI lower bound "
                   f"{100 * low(near):+.2f} points, {-100 * low(near) - budget_points:.2f} over the budget)")
    accurate = max(qualifying, key=low, default=None)  # only when there is an FP32 row it is not faster than
    if accurate is not None and fp32 is not None:
        reason += (f"; within the budget but not faster than FP32: {accurate['candidate']} "
                   f"({accurate['latency_p50_ms']:.2f} ms p50 vs {fp32['latency_p50_ms']:.2f})")
    closest = near or accurate
    if fp32 is not None:
        fp32["recommended"] = True
    return {"candidate": "fp32" if fp32 else None, "backend": target_backend, "reason": reason,
            "closest": closest["candidate"] if closest else None}


def w8a16_verdict(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """W8A16 should be nearly lossless: a loss over 1 mAP point says the pipeline is suspect."""
    row = next((r for r in rows if r["candidate"].startswith("w8a16") and r.get("delta_map50_95") is not None), None)
    if row is None:
        return None
    loss = -100 * row["delta_map50_95"]
    ok = loss <= W8A16_SUSPECT_POINTS
    return {"candidate": row["candidate"], "loss_points": round(loss, 3), "ok": ok,
            "verdict": (f"pipeline OK: {row['candidate']} loses {loss:.2f} mAP50-95 points (≤ {W8A16_SUSPECT_POINTS})"
                        if ok else
                        f"PIPELINE SUSPECT: {row['candidate']} loses {loss:.2f} mAP50-95 points (> "
                        f"{W8A16_SUSPECT_POINTS}); int8 weights alone should be nearly lossless — check "
                        "preprocessing, export and quantizer placement before trusting other rows")}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "✓" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/")


def to_markdown(rows: list[dict[str, Any]]) -> str:
    arrows = {c: (" ↑" if HIGHER_IS_BETTER[c] else " ↓") if c in HIGHER_IS_BETTER else "" for c in COLUMNS}
    head = "| " + " | ".join(c + arrows[c] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in COLUMNS})
    return buf.getvalue()


def _confidence_intervals(built: dict[str, Any], ds: Any, ids: list[int], resamples: int,
                          seed: int) -> dict[str, tuple[float, float]]:
    import numpy as np

    from quantsweep.metrics import bootstrap_map

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
                  benches: dict[str, dict[str, Any]], ds: Any, ids: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write ``results/summary.*``, the plots and ``report.html``; return (rows, recommendation)."""
    from quantsweep.plots import k_curve_plot, pareto_plot
    from quantsweep.report import write_report

    res = run_dir / "results"
    ci = _confidence_intervals(built, ds, ids, min(cfg.bootstrap, 1000), cfg.seed)
    rows = summary_rows(built, benches, ci)
    decision = decide(rows, cfg.budget, cfg.target_backend)
    verdict = w8a16_verdict(rows)
    atomic_write_text(res / "summary.csv", to_csv(rows))
    atomic_write_text(res / "summary.md", to_markdown(rows))
    atomic_write_json(res / "summary.json", {
        "what": "one row per candidate x backend; mAP on the evaluation subset, latency per batch",
        "columns": list(COLUMNS), "higher_is_better": HIGHER_IS_BETTER, "rows": rows,
        "recommendation": {k: v for k, v in decision.items() if k != "row"}, "w8a16": verdict,
        "bootstrap": {"resamples": min(cfg.bootstrap, 1000), "seed": cfg.seed, "paired": True},
        "budget_points": cfg.budget})
    pareto_plot(rows, res / "pareto.png")
    k_curve_plot(rows, res / "k_curve.png")
    sens_path = run_dir / "sensitivity.json"
    sens = json.loads(sens_path.read_text()) if sens_path.exists() else {}
    write_report(run_dir, cfg, rows, decision, verdict, sens)
    return rows, {k: v for k, v in decision.items() if k != "row"}
