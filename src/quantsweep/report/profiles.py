"""The report's "Where the time goes": the per-node profiles a run wrote (``results/profile.*.json``),
as one figure (node time stacked by operator type, FP32 beside the pick or the fastest candidate) and a
table by executed precision, with the sentence that says what the convolutions save and what the rest costs.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from quantsweep.results import Decision

__all__ = ["compared", "profile_html", "profile_plot", "read_profiles", "where_it_goes"]

_SHOWN_OPS = 7  # operator types drawn one by one; the rest is "other"


def read_profiles(res: Path, runtime: str | None) -> dict[str, dict[str, Any]]:
    """Candidate -> its profile on ``runtime`` (``results/profile.<candidate>.<runtime>.json``), FP32 first."""
    if runtime is None:
        return {}
    found = {p.name[len("profile."):-len(f".{runtime}.json")]: json.loads(p.read_text())
             for p in sorted(res.glob(f"profile.*.{runtime}.json"))}
    return dict(sorted(found.items(), key=lambda kv: kv[0] != "fp32"))


def compared(profiles: dict[str, dict[str, Any]], decision: Decision) -> str | None:
    """The candidate set beside FP32: the pick when it was profiled, else the closest candidate, else the
    profiled candidate with the shortest median call."""
    others = [n for n in profiles if n != "fp32"]
    for name in (decision.candidate, decision.closest):
        if name in others:
            return name
    return min(others, key=lambda n: profiles[n]["latency_p50_ms"], default=None)


def where_it_goes(profiles: dict[str, dict[str, Any]], decision: Decision) -> str | None:
    """The sentence comparing :func:`compared`'s candidate with FP32 (``bench.profile.where_the_time_goes``);
    None without both profiles."""
    from quantsweep.bench.profile import where_the_time_goes

    name = compared(profiles, decision)
    if "fp32" not in profiles or name is None:
        return None
    return where_the_time_goes(profiles["fp32"], profiles[name], name)


def profile_plot(profiles: dict[str, dict[str, Any]], decision: Decision, out: Path) -> Path | None:
    """Node time stacked by operator type, FP32 beside :func:`compared`'s candidate; None without both."""
    name = compared(profiles, decision)
    if "fp32" not in profiles or name is None:
        for stale in (out, out.with_suffix(".svg")):
            stale.unlink(missing_ok=True)
        return None
    from quantsweep.report.plots import _pyplot, _save

    shown = {"fp32": profiles["fp32"], name: profiles[name]}
    ops: dict[str, float] = {}
    for p in shown.values():
        for op, ms in p["by_op"].items():
            ops[op] = ops.get(op, 0.0) + ms
    top = [op for op, _ in sorted(ops.items(), key=lambda kv: -kv[1])[:_SHOWN_OPS]]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 2.8))
    colors = plt.get_cmap("tab10").colors
    for row, p in enumerate(shown.values()):
        left = 0.0
        parts = [(op, p["by_op"].get(op, 0.0)) for op in top]
        parts.append(("other", sum(ms for op, ms in p["by_op"].items() if op not in top)))
        for i, (op, ms) in enumerate(parts):
            ax.barh(row, ms, left=left, color=colors[i % len(colors)] if op != "other" else "#bbb",
                    label=op if row == 0 else None, edgecolor="white", linewidth=0.5)
            left += ms
        ax.text(left, row, f" {left:.2f} ms", va="center", fontsize=8)
    ax.set_xlim(0, 1.14 * max(sum(p["by_op"].values()) for p in shown.values()))  # room for the totals
    ax.set_yticks(range(len(shown)), [f"{n}\n(median call {p['latency_p50_ms']:.2f} ms)" for n, p in shown.items()])
    ax.invert_yaxis()
    ax.set_xlabel(f"node time per call, ms ({profiles['fp32']['runtime']}, mean of {profiles['fp32']['runs']} calls, "
                  "counters on)")
    ax.legend(ncol=4, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, out)


def profile_html(res: Path, decision: Decision, image: str) -> str:
    """The section's body: the sentence, the figure (``image``: its ``<img>``), the time by precision."""
    profiles = read_profiles(res, decision.backend)
    sentence = where_it_goes(profiles, decision)
    if sentence is None:
        return ("<p>No per-node profile in this run (the target runtime has none — only OpenVINO and ONNX Runtime "
                "CPU do — or <code>--profile-runs 0</code>). <code>quantsweep profile --model FILE</code> profiles "
                "any model.</p>")
    rows = "".join(f"<tr><td>{escape(n)}</td><td>{p['latency_p50_ms']:.3f}</td><td>{p['total_ms']:.3f}</td>"
                   f"<td>{100 * (p['conv_share'] or 0):.0f} %</td><td>{p['reorders']['count']} / "
                   f"{p['reorders']['ms']:.3f}</td><td>{escape(', '.join(f'{k} {v:.2f}' for k, v in p['by_precision'].items()))}"
                   f"</td></tr>" for n, p in profiles.items())
    return (f"<p>{escape(sentence)} ({escape(profiles['fp32']['runtime'])}; "
            f"<code>results/profile.*.json</code> holds every node).</p>{image}"
            "<table><tr><th>model</th><th>median call, ms</th><th>node time, ms</th><th>convolutions</th>"
            f"<th>reorders (count / ms)</th><th>time by executed precision, ms</th></tr>{rows}</table>")
