"""The consolidated table: one row per candidate x backend, its Pareto flags, CSV and Markdown.

Pure functions over the sweep's per-candidate metrics and bench JSON. Each column declares once
whether higher is better.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "HIGHER_IS_BETTER", "pareto_flags", "summary_rows", "to_csv", "to_markdown"]

COLUMNS = ("candidate", "scheme", "precision", "k", "backend", "label", "size_mb", "map50_95", "map50",
           "delta_map50_95", "delta_ci95_low", "delta_ci95_high", "latency_p50_ms", "latency_p90_ms",
           "throughput_ips", "speedup_vs_fp32", "pareto", "recommended", "error")
HIGHER_IS_BETTER = {"size_mb": False, "map50_95": True, "map50": True, "delta_map50_95": True,
                    "delta_ci95_low": True, "delta_ci95_high": True, "latency_p50_ms": False,
                    "latency_p90_ms": False, "throughput_ips": True, "speedup_vs_fp32": True}


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
