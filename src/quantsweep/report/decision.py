"""The recommendation and the W8A16 pipeline verdict: pure functions over the table's rows."""

from __future__ import annotations

from typing import Any

__all__ = ["W8A16_SUSPECT_POINTS", "decide", "w8a16_verdict"]

W8A16_SUSPECT_POINTS = 1.0


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
