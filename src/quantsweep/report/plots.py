"""The sweep's pictures, each saved as PNG (embedded in the report) and SVG.

- :func:`pareto_plot`: per runtime, ΔmAP50-95 (points, with its 95 % interval) against speed-up
  vs FP32, zoomed to the deployable candidates, the budget drawn as a band, the Pareto front
  joined; emulated, unsupported and ablation candidates are listed in a side panel instead of
  stretching the axes. Labels are placed by ``adjustText`` so they do not collide.
- :func:`k_curve_plot`: ΔmAP (with intervals) and speed-up against K, per placement (the grid's
  K-sets and the search's probes alike).
- :func:`kept_float_strip`: where the recommended model's float-kept nodes sit in the network.
- :func:`damage_plot`: what a candidate changed against FP32, per class (Δ AP50-95 with its paired
  interval, box counts) and per object size.

A plot with nothing to show is not drawn (the function returns None, the report says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.results import Row

__all__ = ["damage_plot", "k_curve_plot", "kept_float_strip", "pareto_plot"]

DEPLOYABLE = ("accelerated", "float")


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    plt = _pyplot()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return out


def _points(v: float | None) -> float | None:
    return None if v is None else 100 * v


def _deployable(r: Row) -> bool:
    return (r.error is None and r.label in DEPLOYABLE and not r.ablation and r.speedup_vs_fp32 is not None
            and r.delta_map50_95 is not None)


def pareto_plot(rows: list[Row], out: Path, budget_points: float = 1.0, target: str | None = None) -> Path:
    """ΔmAP (points, interval bars) vs speed-up per runtime; the decision's runtime first."""
    plt = _pyplot()
    backends: list[str | None] = sorted({r.backend for r in rows if r.backend}, key=lambda b: (b != target, b))
    n = max(len(backends), 1)
    fig, axes = plt.subplots(n, 2, figsize=(11, 4.6 * n), squeeze=False, gridspec_kw={"width_ratios": [3, 1]})
    for (ax, side), backend in zip(axes, backends or [None]):
        on = [r for r in rows if r.backend == backend]
        floor = -4 * budget_points  # zoomed to the deployable region: far below the budget is listed aside
        main = [r for r in on if _deployable(r) and (_points(r.delta_map50_95) or 0.0) >= floor]
        off_scale = [r for r in on if _deployable(r) and r not in main]
        texts = []
        for r in main:
            x, y = r.speedup_vs_fp32 or 1.0, _points(r.delta_map50_95) or 0.0
            low, high = _points(r.delta_ci95_low), _points(r.delta_ci95_high)
            color = "tab:red" if r.recommended else ("gray" if r.candidate == "fp32" else "tab:blue")
            if low is not None and high is not None:
                ax.errorbar(x, y, yerr=[[y - low], [high - y]], fmt="o", color=color, ms=7 if r.recommended else 5,
                            capsize=3, lw=1, zorder=3)
            else:
                ax.plot(x, y, "o", color=color, zorder=3)
            texts.append(ax.text(x, y, r.candidate, fontsize=7, color=color))
        ax.set_ylim(bottom=max(ax.get_ylim()[0], floor))
        ax.axhspan(-budget_points, max(ax.get_ylim()[1], 0.5), color="tab:green", alpha=0.08,
                   label=f"within the {budget_points:g}-point budget")
        ax.axhline(-budget_points, color="tab:green", lw=0.8, ls="--")
        ax.axvline(1.0, color="gray", lw=0.8, ls=":")
        front = sorted((r for r in main if r.pareto), key=lambda r: r.speedup_vs_fp32 or 0.0)
        if len(front) > 1:
            ax.plot([r.speedup_vs_fp32 for r in front], [_points(r.delta_map50_95) for r in front], "--",
                    color="gray", lw=0.8, zorder=2, label="Pareto front")
        if texts:
            try:
                from adjustText import adjust_text

                adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.5})
            except ImportError:  # labels may overlap; the table has every number
                pass
        mark = " (decision)" if backend == target or target is None else f" (Δ as scored by {target})"
        ax.set_title(f"{backend}{mark}: ΔmAP50-95 vs speed-up; red = recommended", fontsize=9)
        ax.set_xlabel(f"speed-up vs FP32 on {backend} (interleaved) →")
        ax.set_ylabel("ΔmAP50-95 vs FP32, points (95% interval) ↑")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        apart = [r for r in on if not _deployable(r)]
        side.axis("off")
        lines = [f"{r.candidate}: {r.label or 'error'}"
                 + (f", {r.speedup_vs_fp32:.2f}×" if r.speedup_vs_fp32 else "")
                 + (" (ablation)" if r.ablation else "") for r in apart]
        lines += [f"{r.candidate}: Δ {_points(r.delta_map50_95):+.1f} (off scale), {r.speedup_vs_fp32:.2f}×"
                  for r in off_scale]
        side.text(0, 1, "set apart (not deployable here, or far outside the budget):\n" + ("\n".join(lines[:18]) or "none"),
                  va="top", fontsize=7, family="monospace", transform=side.transAxes)
    fig.tight_layout()
    return _save(fig, out)


def k_curve_plot(rows: list[Row], out: Path, backend: str | None = None) -> Path | None:
    """ΔmAP (points, intervals) and speed-up against K for each K-scheme family on ``backend``; None
    (nothing drawn, stale files removed) when no candidate kept any layer (K > 0)."""
    fams = sorted({r.scheme for r in rows if r.k and r.error is None})
    if not fams:
        for stale in (out, out.with_suffix(".svg")):
            stale.unlink(missing_ok=True)
        return None
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for fam in fams:
        pts = sorted({r.k: r for r in rows if r.scheme == fam and r.error is None and not r.ablation
                      and r.delta_map50_95 is not None}.values(), key=lambda r: r.k)
        ys = [_points(r.delta_map50_95) or 0.0 for r in pts]
        lows = [(_points(r.delta_ci95_low) if r.delta_ci95_low is not None else y) for r, y in zip(pts, ys)]
        highs = [(_points(r.delta_ci95_high) if r.delta_ci95_high is not None else y) for r, y in zip(pts, ys)]
        a1.errorbar([r.k for r in pts], ys, yerr=[[y - lo for y, lo in zip(ys, lows)],  # type: ignore[operator]
                                                  [hi - y for y, hi in zip(ys, highs)]],  # type: ignore[operator]
                    fmt="o-", capsize=3, label=fam)
        lat = sorted((r for r in rows if r.scheme == fam and r.speedup_vs_fp32 and not r.ablation
                      and (backend is None or r.backend == backend)), key=lambda r: r.k)
        a2.plot([r.k for r in lat], [r.speedup_vs_fp32 for r in lat], "o-", label=fam)
    a1.axhline(0, color="gray", ls="--", lw=0.8, label="FP32")
    a2.axhline(1, color="gray", ls="--", lw=0.8, label="FP32")
    a1.set_xlabel("K (most sensitive nodes kept in float)")
    a1.set_ylabel("ΔmAP50-95 vs FP32, points (95% interval) ↑")
    a2.set_xlabel("K")
    a2.set_ylabel(f"speed-up vs FP32{' on ' + backend if backend else ''} ↑")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def kept_float_strip(fp32_onnx: Path, scheme: dict[str, Any] | None, out: Path) -> Path | None:
    """A strip over the network's compute nodes in graph order, marking the float-kept ones.

    Head-policy nodes (decode tail) and sensitivity-chosen nodes are coloured apart. None when
    there is no scheme or no graph to draw.
    """
    if scheme is None or not fp32_onnx.is_file():
        return None
    import onnx

    compute = [n.name for n in onnx.load(str(fp32_onnx), load_external_data=False).graph.node
               if n.op_type in ("Conv", "MatMul", "Gemm", "ConvTranspose")]
    if not compute:
        return None
    kept = {k["node"]: k.get("why", "") for k in scheme.get("kept_float", [])}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 1.5))
    for i, name in enumerate(compute):
        why = kept.get(name)
        color = "#e0e0e0" if why is None else ("tab:orange" if "sensitiv" in why or "rank" in why else "tab:purple")
        ax.axvspan(i, i + 1, color=color, lw=0)
    ax.set_xlim(0, len(compute))
    ax.set_yticks([])
    ax.set_xlabel(f"compute nodes in graph order (input → output), {len(compute)} in all")
    ax.set_title(f"{scheme.get('name')}: float-kept nodes — orange = by sensitivity, purple = head policy, "
                 "grey = quantized", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def damage_plot(name: str, changes: dict[str, Any], out: Path, top: int = 20) -> Path | None:
    """Per class (the ``top`` most damaged, then the most improved if room): Δ AP50-95 in points with
    the paired 95 % interval, labelled with its box count (only classes with enough boxes for an
    interval, when there are any); beside it Δ AP per object size. None when there is no class to show."""
    classes = changes.get("classes") or []
    if not classes:
        return None
    judged = [c for c in classes if c.get("ci95")] or classes  # classes with enough boxes for an interval
    shown = judged[:top] if len(judged) <= top else judged[: top - 3] + judged[-3:]
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 1.2 + 0.28 * len(shown)), gridspec_kw={"width_ratios": [3, 1]})
    ys = list(range(len(shown)))[::-1]
    deltas = [100 * c["delta"] for c in shown]
    colors = ["tab:red" if d < 0 else "tab:green" for d in deltas]
    a1.barh(ys, deltas, color=colors, alpha=0.75)
    for y, c in zip(ys, shown):
        if c.get("ci95"):
            lo, hi = (100 * v for v in c["ci95"])
            a1.plot([lo, hi], [y, y], color="black", lw=1)
    a1.set_yticks(ys, [f"{c['name']} ({c['boxes']})" for c in shown], fontsize=8)
    a1.axvline(0, color="gray", lw=0.8)
    a1.set_xlabel(f"Δ AP50-95 per class, {name} vs FP32, points (paired 95% interval; boxes in brackets)")
    a1.grid(axis="x", alpha=0.3)
    sizes = changes.get("sizes") or {}
    labels = [k for k, v in sizes.items() if v.get("delta") is not None]
    vals = [100 * sizes[k]["delta"] for k in labels]
    a2.barh(range(len(labels))[::-1], vals, color=["tab:red" if v < 0 else "tab:green" for v in vals], alpha=0.75)
    a2.set_yticks(range(len(labels))[::-1], [f"{k} ({sizes[k]['boxes']})" for k in labels], fontsize=8)
    a2.axvline(0, color="gray", lw=0.8)
    a2.set_xlabel("Δ AP by object size, points")
    a2.grid(axis="x", alpha=0.3)
    fig.suptitle(f"What {name} changed: {changes.get('num_images')} {changes.get('images')} images", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)
