"""The recommendation and the W8A16 pipeline verdict: pure functions over the table's rows.

:func:`conclude` turns a sweep's scored candidates into the table's rows (with their paired
intervals), the :class:`~quantsweep.results.Decision` and the W8A16 verdict; the report then
presents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantsweep.bench.timing import speedup_text
from quantsweep.decide.confirm import Confirmation
from quantsweep.ledger import Ledger
from quantsweep.results import Decision, Row, points, summary_rows, tested

__all__ = ["W8A16_SUSPECT_POINTS", "Decision", "Study", "conclude", "decide", "decide_confirmed", "faster_than_fp32",
           "finalists", "pick_target", "search_intervals", "w8a16_verdict"]

W8A16_SUSPECT_POINTS = 1.0


def _low(r: Row) -> float | None:
    """The ΔmAP the budget is judged on: the CI's lower bound, else the point estimate."""
    return r.delta_ci95_low if r.delta_ci95_low is not None else r.delta_map50_95


def pick_target(rows: list[Row], requested: str | None = None) -> str | None:
    """The backend a decision is for: ``requested``, else the one where FP32 runs fastest."""
    if requested is not None:
        return requested
    measured = [r for r in rows if r.error is None and r.latency_p50_ms is not None]
    fp32_rows = [r for r in measured if r.candidate == "fp32"]
    return min(fp32_rows or measured, key=lambda r: r.latency_p50_ms or 0.0).backend if measured else None


def finalists(rows: list[Row], budget_points: float, target: str | None, count: int) -> list[Row]:
    """The ``count`` fastest candidates on ``target`` that beat FP32 there and whose *point* ΔmAP on
    the search subset is within the budget: the ones worth confirming on held-out images."""
    on_target = [r for r in rows if r.backend == target and r.error is None and r.latency_p50_ms is not None]
    fp32 = next((r for r in on_target if r.candidate == "fp32"), None)
    eligible = [r for r in on_target if r.candidate != "fp32" and not r.ablation and not r.collapsed
                and r.delta_map50_95 is not None and r.delta_map50_95 >= -budget_points / 100.0
                and faster_than_fp32(r, fp32)]
    return sorted(eligible, key=_speed, reverse=True)[:count]


def _speed(r: Row) -> float:
    """How fast a row runs relative to FP32: its interleaved speed-up when measured, else 1/p50.

    Candidates benchmarked in different sessions (the search's probes) compare by the ratio to the
    FP32 run interleaved with each, not by absolute milliseconds taken minutes apart.
    """
    if r.speedup_vs_fp32 is not None:
        return r.speedup_vs_fp32
    return 1.0 / r.latency_p50_ms if r.latency_p50_ms else 0.0


def _sp(r: Row) -> str:
    """``1.42× [1.38, 1.47]``: the speed-up with its interval over the interleaved rounds."""
    return speedup_text(r.speedup_vs_fp32, r.speedup_ci95_low, r.speedup_ci95_high)


def faster_than_fp32(r: Row, fp32: Row | None = None) -> bool:
    """Whether ``r`` runs measurably faster than FP32: its speed-up's 95 % interval (the interleaved
    rounds' paired ratios) lies above 1, or, without an interval, its speed-up is above 1. A ratio
    whose interval straddles 1 is the machine's noise, not a speed-up worth an accuracy loss (real
    YOLOv5n on OpenVINO: an INT8 placement timed 1.01x in one run and 0.99x in the next). An
    ``emulated`` row never is: its runtime computes the float graph on dequantized values (OpenVINO
    folds an INT4 W4A16 file's dequantization at compile time: 1.003x on the demo, spread 14 %)."""
    if r.label == "emulated":
        return False
    if r.speedup_vs_fp32 is not None:
        low = r.speedup_ci95_low if r.speedup_ci95_low is not None else r.speedup_vs_fp32
        return low > 1.0
    if fp32 is None:
        return True
    return (r.latency_p50_ms or 0.0) < (fp32.latency_p50_ms or 0.0)


def decide_confirmed(rows: list[Row], confirmations: list[dict[str, Any]], budget_points: float,
                     target: str | None) -> Decision:
    """The fastest finalist whose held-out verdict is ``pass`` — the design's one-sided lower bound
    ``Δ − c·SE`` (``z = (Δ + budget)/SE`` at least the look's boundary ``c``; α split over looks, and
    over finalists by the design's rule) keeps the budget — else the first undecided finalist as
    ``unconfirmed``, else FP32. The two-sided 95 % interval shown beside it is descriptive: it is not
    what was tested.

    ``confirmations`` are the finalists' :class:`~quantsweep.decide.confirm.Confirmation`
    dicts in the order they were tested (fastest first under Bonferroni, safest first under the fixed
    sequence).
    """
    if not confirmations:  # no finalist to confirm: the search subset decides (FP32 or unconfirmed)
        return decide(rows, budget_points, target, note="no candidate qualified as a finalist")
    by_name = {r.candidate: r for r in rows if r.backend == target}
    passed = [(c, by_name[c["candidate"]]) for c in confirmations
              if c["verdict"] == "pass" and c["candidate"] in by_name]
    if passed:
        c, row = max(passed, key=lambda cr: _speed(cr[1]))
        search = points(row.delta_map50_95 or 0.0, row.delta_ci95_low, row.delta_ci95_high)
        return Decision(row.candidate, target,
                        f"fastest on {target} ({row.latency_p50_ms or 0.0:.2f} ms p50, "
                        f"{_sp(row)} FP32, {row.label}) among the finalists "
                        f"confirmed on held-out images: ΔmAP50-95 {tested(c, budget_points)} points"
                        f" on {c['images']} confirmation images, within the {budget_points:.2f}-point budget "
                        f"(search subset: {search})", confirmed=c, status="deploy")
    texts = "; ".join(Confirmation.from_dict(c).text(budget_points) for c in confirmations)
    undecided = next((c for c in confirmations if c["verdict"] == "undecided" and c["candidate"] in by_name), None)
    if undecided is not None:  # the held-out images could not settle it: the best candidate, not confirmed
        row = by_name[undecided["candidate"]]
        return Decision(row.candidate, target,
                        f"finalist on {target} ({_sp(row)} FP32) that no "
                        f"held-out verdict rejected, but none passed it either: {texts}",
                        status="unconfirmed",
                        note=Confirmation.from_dict(undecided).text(budget_points))
    return Decision("fp32" if "fp32" in by_name else None, target,
                    f"no finalist on {target} kept the {budget_points:.2f}-point budget on held-out images: {texts}",
                    confirmations[0]["candidate"], status="fp32" if "fp32" in by_name else "none")


def decide(rows: list[Row], budget_points: float, target_backend: str | None = None,
           note: str | None = None) -> Decision:
    """The fastest candidate on the target backend whose ΔmAP CI lower bound is within the budget —
    on the search subset only, so a pick is ``unconfirmed`` (``note``: why no held-out verdict).

    The target backend defaults to the one where the FP32 reference is fastest. Mark the chosen
    row with :meth:`Decision.mark`.
    """
    measured = [r for r in rows if r.error is None and r.latency_p50_ms is not None]
    if not measured:
        return Decision(None, None, "no candidate was benchmarked successfully")
    target_backend = pick_target(rows, target_backend)
    on_target = [r for r in measured if r.backend == target_backend]
    budget = budget_points / 100.0

    def p50(r: Row) -> float:
        return r.latency_p50_ms or 0.0

    fp32 = next((r for r in on_target if r.candidate == "fp32"), None)
    # ablation rows (head policy off) are diagnostics, not deployment candidates
    eligible = [r for r in on_target if r.candidate != "fp32" and not r.ablation and not r.collapsed]
    judged = [(r, low) for r in eligible if (low := _low(r)) is not None]
    qualifying = [(r, low) for r, low in judged if low >= -budget]
    faster = [(r, low) for r, low in qualifying if faster_than_fp32(r, fp32)]
    if faster:
        best, low = max(faster, key=lambda rl: _speed(rl[0]))
        return Decision(best.candidate, target_backend,
                        f"fastest on {target_backend} ({p50(best):.2f} ms p50, {_sp(best)} "
                        f"FP32, {best.label}) among candidates whose ΔmAP50-95 95% CI lower bound "
                        f"({100 * low:+.2f} points) is within the {budget_points:.2f}-point budget on the search "
                        "subset", status="unconfirmed", note=note or "no held-out confirmation in this run")
    reason = (f"no candidate on {target_backend} is both measurably faster than FP32 and within the "
              f"{budget_points:.2f}-point budget")
    speedier = [(r, low) for r, low in judged if low < -budget and faster_than_fp32(r, fp32)]
    near = max(speedier, key=lambda rl: rl[1], default=None)  # the faster candidate that misses the budget least
    if near is not None:
        r, low = near
        reason += (f"; closest: {r.candidate} ({_sp(r)} FP32, CI lower bound "
                   f"{100 * low:+.2f} points, {-100 * low - budget_points:.2f} over the budget)")
    accurate = max(qualifying, key=lambda rl: rl[1], default=None)  # within budget, not faster than FP32
    if accurate is not None and fp32 is not None:
        a = accurate[0]
        reason += (f"; within the budget but not measurably faster than FP32: {a.candidate} "
                   f"({p50(a):.2f} ms p50 vs {p50(fp32):.2f}, "
                   f"{_sp(a)})")
    closest = near or accurate
    return Decision("fp32" if fp32 else None, target_backend, reason, closest[0].candidate if closest else None,
                    status="fp32" if fp32 else "none")


def w8a16_verdict(rows: list[Row]) -> dict[str, Any] | None:
    """W8A16 should be nearly lossless: a loss over 1 mAP point says the pipeline is suspect."""
    row = next((r for r in rows if r.candidate.startswith("w8a16") and r.delta_map50_95 is not None), None)
    if row is None or row.delta_map50_95 is None:
        return None
    loss = -100 * row.delta_map50_95
    ok = loss <= W8A16_SUSPECT_POINTS
    return {"candidate": row.candidate, "loss_points": round(loss, 3), "ok": ok,
            "verdict": (f"pipeline OK: {row.candidate} "
                        + (f"loses {loss:.2f} mAP50-95 points" if loss > 0 else f"gains {-loss:.2f} mAP50-95 points")
                        + f" (a loss ≤ {W8A16_SUSPECT_POINTS} is expected)"
                        if ok else
                        f"PIPELINE SUSPECT: {row.candidate} loses {loss:.2f} mAP50-95 points (> "
                        f"{W8A16_SUSPECT_POINTS}); int8 weights alone should be nearly lossless — check "
                        "preprocessing, export and quantizer placement before trusting other rows")}


def search_intervals(ledger: Ledger, ds: Any, ids: list[int], resamples: int,
                     seed: int) -> dict[str, tuple[float, float]]:
    """Each scored candidate's paired 95 % interval of ΔmAP50-95 against FP32 on the search subset."""
    from quantsweep.evaluate.bootstrap import bootstrap_map, delta_interval

    dets = {c.name: c.detections() for c in ledger if c.has_detections()}
    if "fp32" not in dets or resamples < 2:
        return {}
    boot = bootstrap_map(ds.coco, dets, ids, resamples, seed)["map50_95"]
    return {n: delta_interval(v, boot["fp32"]) for n, v in boot.items()}


@dataclass(frozen=True)
class Study:
    """What a decision is made over: the candidates with their measurements, the images they were
    scored on, and how the bootstrap resamples them.

    Attributes:
        ledger: the candidates and their measurements.
        ds: the evaluation dataset.
        ids: the search subset's image ids.
        resamples: bootstrap resamples (``--bootstrap``).
        seed: the bootstrap's seed.
    """

    ledger: Ledger
    ds: Any
    ids: list[int]
    resamples: int
    seed: int


def conclude(study: Study, budget: float, confirmation: dict[str, Any] | None, target: str | None,
             note: str | None = None) -> tuple[list[Row], Decision, dict[str, Any] | None]:
    """The table's rows (marked), the recommendation and the W8A16 verdict of a sweep.

    With a ``confirmation`` record the recommendation is the fastest finalist confirmed on
    held-out images; without one it is decided on the search subset and is ``unconfirmed``
    (``note``: why there was no confirmation).
    """
    rows = summary_rows(study.ledger, search_intervals(study.ledger, study.ds, study.ids, study.resamples, study.seed))
    if confirmation is not None:
        decision = decide_confirmed(rows, confirmation["results"], budget, confirmation["target"])
    else:
        decision = decide(rows, budget, target, note=note)
    rows = decision.mark(rows)
    return rows, decision, w8a16_verdict(rows)
