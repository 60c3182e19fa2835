"""The terminal summary of a run: the decision, its evidence and the paths, in at most ~25 lines.

A pure function of ``results/summary.json`` (the full table stays in ``summary.{md,csv,json}``).
ΔmAP is in points with its paired 95 % interval; speed-ups are against FP32 on the same runtime,
timed in interleaved rounds.

Example:
    >>> print(terminal_summary(json.loads(Path("runs/demo/x/results/summary.json").read_text()),
    ...                        Path("runs/demo/x")))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.bench.timing import speedup_text
from quantsweep.files import ModelFile
from quantsweep.results import points, tested

__all__ = ["terminal_summary"]

TOP = 5  # candidates listed for the target runtime
OTHER_TOP = 2  # ... and for each other runtime


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _speed(r: dict[str, Any]) -> str:
    return speedup_text(r.get("speedup_vs_fp32"), r.get("speedup_ci95_low"), r.get("speedup_ci95_high"))


def _delta(r: dict[str, Any]) -> str:
    if r.get("delta_map50_95") is None:
        return "—"
    return points(r["delta_map50_95"], r.get("delta_ci95_low"), r.get("delta_ci95_high"))


def _deployable(r: dict[str, Any]) -> bool:
    return (r["candidate"] != "fp32" and not r.get("ablation") and r.get("error") is None
            and r.get("latency_p50_ms") is not None)


def _ranked(rows: list[dict[str, Any]], backend: str, budget: float) -> list[dict[str, Any]]:
    """Deployable rows on ``backend``: within the budget (point estimate) first, then by speed-up."""
    on = [r for r in rows if r.get("backend") == backend and _deployable(r)]

    def useful(r: dict[str, Any]) -> bool:  # measurably faster than FP32, within the budget (point estimate)
        speed = r.get("speedup_ci95_low") if r.get("speedup_ci95_low") is not None else r.get("speedup_vs_fp32")
        delta = r.get("delta_map50_95")
        return speed is not None and speed > 1.0 and delta is not None and delta >= -budget / 100

    return sorted(on, key=lambda r: (not useful(r), r.get("label") != "accelerated",
                                     -(r.get("speedup_vs_fp32") or 0.0)))


def terminal_summary(summary: dict[str, Any], run_dir: Path, width: int = 100) -> str:
    """The run's summary for a terminal ``width`` columns wide (≤ ~25 lines)."""
    rows: list[dict[str, Any]] = summary["rows"]
    rec = summary.get("recommendation") or {}
    budget = float(summary.get("budget_points", 1.0))
    target = rec.get("backend")
    conf = summary.get("confirmation") or {}
    search_images = summary.get("search_images")
    lines: list[str] = []
    chosen = next((r for r in rows if r.get("recommended")), None)
    if chosen is not None and rec.get("candidate") not in (None, "fp32"):
        c = rec.get("confirmed") or {}
        held = (f"{tested(c, budget)} points on {c['images']} held-out images"
                if c else f"Δ {_delta(chosen)} points on the search subset")
        confirmed = rec.get("status", "deploy" if c else "unconfirmed") == "deploy"
        head = "DEPLOY" if confirmed else "BEST CANDIDATE, NOT CONFIRMED:"
        lines.append(f"{head} {chosen['candidate']} on {target}: {_speed(chosen)} FP32 · {held}")
        design = conf.get("design") or {}
        if confirmed:
            lines.append(f"  confirmed within the {budget:.2f}-point budget at α={design.get('alpha', '?')} · "
                         f"{chosen['latency_p50_ms']:.2f} ms p50 · {chosen.get('label')} · search-subset Δ {_delta(chosen)}")
        else:
            lines.append(f"  why not confirmed: {rec.get('note') or 'no held-out verdict'}")
        model = ModelFile.find(run_dir / "recommended", chosen["candidate"]).path
        lines.append(f"  file: {model}")
        lines.append(f"  how to run it: {run_dir / 'recommended' / 'README.md'}")
    else:
        lines.append(f"STAY ON FP32 (on {target}): {rec.get('reason', 'nothing measured')}")
        if rec.get("closest"):
            lines.append(f"  closest: {rec['closest']}")
    lines.append("")
    if target:
        what = f"{search_images} search images" if search_images else "the search subset"
        if summary.get("scored_by"):
            what += f", scored by {summary['scored_by']}"
        lines.append(f"On {target}: Δ mAP50-95 points on {what} [95% interval], speed-up vs FP32 (interleaved)")
        top = _ranked(rows, target, budget)[:TOP]
        wide = min(max((len(r["candidate"]) for r in top), default=8), 34)
        for r in top:
            mark = "  ← deploy" if r.get("recommended") else ("  (collapsed)" if r.get("collapsed") else "")
            lines.append(f"  {r['candidate']:<{wide}} {_delta(r):<22} {_speed(r):>6}  {r.get('label') or ''}{mark}")
    others: set[str] = {str(r["backend"]) for r in rows if r.get("backend") and r.get("backend") != target}
    for backend in sorted(others):
        best = _ranked(rows, backend, budget)[:OTHER_TOP]
        if best:
            lines.append(f"On {backend}: " + "; ".join(f"{r['candidate']} {_speed(r)} Δ {_delta(r)}" for r in best))
    search = summary.get("search")
    if search:
        stops = ", ".join(f"{p['placement']} {p.get('stopped', '')}".strip()
                          + (f" (+ hedge {p['hedge']['candidate']})" if isinstance(p.get("hedge"), dict) else "")
                          for p in search["placements"])
        stops = stops or "no placement measurably faster than FP32 at K=0"
        lines.append(f"Search on {search['target']}: {search['evaluations']} probe(s) beyond K=0 "
                     f"(cap {search['max_evals']}), {search['seconds']:.0f} s — {stops}")
    for c in conf.get("results", []):
        if not rec.get("confirmed") or c["candidate"] != rec["confirmed"].get("candidate"):
            lines.append(f"Confirmation: {c['candidate']} {c['verdict']} at {c['images']} images, "
                         f"{tested(c, budget)}")
    if search and (search.get("four_bit") or {}).get("skipped"):
        lines.append("Four-bit for size: not searched (on this runtime 4-bit buys file size, not speed); "
                     "the K=0 files are in the table; add --size for the smallest file within --w4-budget")
    four = conf.get("four_bit") or {}
    for c in four.get("results", []):  # the 4-bit size picks, against their own budget
        lines.append(f"Four-bit for size: {c['candidate']} {c['verdict']} within "
                     f"{c.get('budget_points', four['budget_points']):g} points at "
                     f"{c['images']} held-out images, {tested(c, c.get('budget_points', four['budget_points']))}")
    if conf.get("design"):
        d = conf["design"]
        share = conf.get("alpha_split") or {}
        of_run = f" (of the run's α={share['run_alpha']:g}: {share['rule'].split(':')[0]})" if share else ""
        lines.append(f"Verdict design: one-sided α={d['alpha']:g}{of_run} over {d['finalists']} finalist(s) and "
                     f"{len(d['looks'])} look(s) ({'/'.join(map(str, d['looks']))} images), "
                     f"{d['spending'].upper()} spending, SE from {d['resamples']} resamples")
    if summary.get("w8a16"):
        lines.append(f"W8A16 check: {summary['w8a16']['verdict']}")
    unsupported = sorted({r["candidate"] + "@" + str(r.get("backend")) for r in rows if r.get("label") == "unsupported"})
    failed = sorted({r["candidate"] for r in rows if r.get("error") and r.get("label") != "unsupported"})
    collapsed = sorted({r["candidate"] for r in rows if r.get("collapsed")})
    if unsupported or failed or collapsed:
        parts = [f"{len(unsupported)} unsupported ({', '.join(unsupported)})" if unsupported else "",
                 f"{len(failed)} failed ({', '.join(failed)})" if failed else "",
                 f"{len(collapsed)} collapsed ({', '.join(collapsed)})" if collapsed else ""]
        lines.append("Not deployable: " + "; ".join(p for p in parts if p))
    lines.append(f"report: {run_dir / 'report.html'} · full table: {run_dir / 'results' / 'summary.md'}")
    return "\n".join(_clip(line, width) for line in lines)
