"""What a run cost: its steps' seconds (from ``manifest.json``) grouped by stage, and its wall time.

Every step a sweep records in its manifest belongs to one stage. The step's name says most of it
(``build:``, ``eval:``, ``sensitivity:``, ``bench:``, ``confirm:``); ``search.json`` says which
candidates were search probes and which families the 4-bit *size* search ranked, so that the
size search's builds, evaluations and rankings are one line of their own.

Example:
    >>> steps = {"baseline": {"seconds": 2.0}, "build:int8-qdq": {"seconds": 5.0},
    ...          "build:int8-qdq-k4": {"seconds": 6.0}, "report": {"seconds": 1.0}}
    >>> search = {"trace": [{"candidate": "int8-qdq-k4", "k": 4}]}
    >>> [(s["stage"], s["seconds"]) for s in by_stage(steps, search)["stages"] if s["seconds"]]
    [('export', 2.0), ('build', 5.0), ('search probes', 6.0), ('report', 1.0)]
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["STAGES", "by_stage", "cost_html", "cost_line", "read_cost", "stage_of"]

#: the stages, in the order a run meets them
STAGES: tuple[str, ...] = ("export", "build", "rank", "evaluate", "benchmark", "search probes", "confirmation",
                           "4-bit size search", "profile", "report")


def _probes(search: dict[str, Any] | None) -> tuple[set[str], set[str], set[str]]:
    """(speed-search probe candidates, 4-bit size probe candidates, families ranked for the size search)."""
    search = search or {}
    speed = {t["candidate"] for t in search.get("trace", []) if t.get("k", 0) > 0}
    for p in search.get("placements", []):
        if isinstance(p.get("hedge"), dict):
            speed.add(p["hedge"]["candidate"])
    four = search.get("four_bit") or {}
    size = {t["candidate"] for t in four.get("trace", []) if t.get("k", 0) > 0}
    size_families = {p["placement"] for p in four.get("placements", [])
                     if p.get("stopped") and not str(p["stopped"]).startswith("qualified at K=0")}
    return speed, size, size_families - {p["placement"] for p in search.get("placements", [])}


def stage_of(step: str, speed_probes: set[str], size_probes: set[str], size_families: set[str]) -> str:
    """The stage of manifest step ``step``.

    Example:
        >>> stage_of("confirm-cpu:fp32:0", set(), set(), set()), stage_of("sensitivity:w4", set(), set(), {"w4"})
        ('confirmation', '4-bit size search')
    """
    what, _, rest = step.partition(":")
    if what == "baseline":
        return "export"
    if what == "bench" and rest.count(":") == 1:  # bench:<target>:<probe>, timed with FP32
        probe = rest.split(":", 1)[1]
        return "search probes" if probe not in size_probes else "4-bit size search"
    if what in ("target", "bench"):
        return "benchmark"
    if what.startswith("confirm"):
        return "confirmation"
    if what == "profile":
        return "profile"
    if what == "sensitivity":
        return "4-bit size search" if rest in size_families else "rank"
    if what in ("build", "eval", "eval-ref"):
        if rest in size_probes:
            return "4-bit size search"
        if rest in speed_probes:
            return "search probes"
        return "build" if what == "build" else "evaluate"
    return "report" if what == "report" else "build"


def by_stage(steps: dict[str, dict[str, Any]], search: dict[str, Any] | None) -> dict[str, Any]:
    """Seconds, step count and the largest peak RSS per stage (every stage listed, in order)."""
    speed, size, families = _probes(search)
    out: dict[str, dict[str, Any]] = {s: {"stage": s, "seconds": 0.0, "steps": 0, "peak_rss_mb": None} for s in STAGES}
    for name, rec in steps.items():
        st = out[stage_of(name, speed, size, families)]
        st["seconds"] = round(st["seconds"] + float(rec.get("seconds") or 0.0), 2)
        st["steps"] += 1
        rss = rec.get("peak_rss_mb_so_far")
        if rss is not None:
            st["peak_rss_mb"] = max(st["peak_rss_mb"] or 0.0, float(rss))
    stages = list(out.values())
    return {"what": "seconds of the run's recorded steps by stage (each step's last run), this machine",
            "stages": stages, "steps_s": round(sum(s["seconds"] for s in stages), 1)}


def read_cost(run_dir: Path) -> dict[str, Any]:
    """:func:`by_stage` of a run folder, with its invocations' walls when ``cost.json`` has them."""
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").is_file() else {}
    search = json.loads((run_dir / "search.json").read_text()) if (run_dir / "search.json").is_file() else None
    out = by_stage(manifest.get("steps", {}), search)
    stored = run_dir / "cost.json"
    if stored.is_file():
        out["invocations"] = json.loads(stored.read_text()).get("invocations", [])
    return out


def cost_line(cost: dict[str, Any], wall_s: float | None, machine: str = "", width: int | None = None) -> str:
    """One line (cut to ``width`` columns with ``…``): the wall, then the seconds of each stage that took any.

    Example:
        >>> cost_line(by_stage({"baseline": {"seconds": 2.0}, "report": {"seconds": 1.4}}, None), 4.2, "2 cores")
        'cost: 4 s wall — steps by stage: export 2 s · report 1 s — on 2 cores'
    """
    parts = " · ".join(f"{s['stage']} {s['seconds']:.0f} s" for s in cost["stages"] if s["seconds"] >= 0.5)
    wall = f"{wall_s:.0f} s wall" if wall_s is not None else f"{cost['steps_s']:.0f} s of steps"
    line = f"cost: {wall} — steps by stage: {parts or 'none recorded'}{f' — on {machine}' if machine else ''}"
    return line if width is None or len(line) <= width else line[:width - 1] + "…"


def cost_html(cost: dict[str, Any], machine: str = "") -> str:
    """The report's footer: the stages' seconds so far (the report step itself is written after it)."""
    def rss(mb: float | None) -> str:
        return "" if mb is None else f"{mb:.0f}"

    rows = "".join(f"<tr><td>{escape(s['stage'])}</td><td>{s['seconds']:.1f}</td><td>{s['steps']}</td>"
                   f"<td>{rss(s['peak_rss_mb'])}</td></tr>" for s in cost["stages"] if s["steps"])
    walls = "; ".join(f"{i.get('started', '?')}: {i['wall_s']:.0f} s" for i in cost.get("invocations", []))
    return (f"<h2>What this run cost</h2><p>Seconds of the recorded steps by stage on {escape(machine or 'this machine')}"
            f" (each step's last run; the report step is written after this table). Steps total "
            f"{cost['steps_s']:.0f} s{'; earlier invocations: ' + escape(walls) if walls else ''}. The 4-bit size search runs "
            "with <code>--size</code>.</p><table id=\"cost\"><tr><th>stage</th><th>seconds</th><th>steps</th>"
            f"<th>peak RSS MB</th></tr>{rows}</table>")
