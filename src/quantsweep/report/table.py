"""The consolidated table's columns, each declaring once whether higher is better, as CSV and
Markdown. The rows themselves are :class:`quantsweep.results.Row` values.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any

from quantsweep.results import Row

__all__ = ["COLUMNS", "HIGHER_IS_BETTER", "to_csv", "to_markdown"]

# the table's columns (a Row's fields but the batch and the ablation flag), each direction declared once
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Row) if f.name not in ("batch", "ablation"))
HIGHER_IS_BETTER = {"size_mb": False, "map50_95": True, "map50": True, "delta_map50_95": True,
                    "delta_ci95_low": True, "delta_ci95_high": True, "latency_p50_ms": False,
                    "latency_p90_ms": False, "throughput_ips": True, "speedup_vs_fp32": True,
                    "speedup_ci95_low": True, "speedup_ci95_high": True}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "✓" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/")


def to_markdown(rows: list[Row]) -> str:
    arrows = {c: (" ↑" if HIGHER_IS_BETTER[c] else " ↓") if c in HIGHER_IS_BETTER else "" for c in COLUMNS}
    head = "| " + " | ".join(c + arrows[c] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_fmt(getattr(r, c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def to_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: getattr(r, c) for c in COLUMNS})
    return buf.getvalue()
