"""The sweep's pictures: accuracy vs latency (Pareto) and accuracy/latency against K."""

from __future__ import annotations

from pathlib import Path

from quantsweep.report.table import Row

__all__ = ["k_curve_plot", "pareto_plot"]


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_plot(rows: list[Row], out: Path) -> Path:
    """mAP50-95 vs p50 latency per backend; emulated candidates hollow, the front joined."""
    plt = _pyplot()
    ok = [r for r in rows if r.error is None and r.latency_p50_ms and r.map50_95 is not None]
    backends = sorted({r.backend or "" for r in ok})
    fig, axes = plt.subplots(1, max(len(backends), 1), figsize=(7 * max(len(backends), 1), 5.5), squeeze=False)
    for ax, backend in zip(axes[0], backends or [""]):
        pts = [r for r in ok if r.backend == backend]
        for r in pts:
            emulated = r.label == "emulated"
            ax.scatter(r.latency_p50_ms, r.map50_95, s=60 if r.recommended else 36,
                       facecolors="none" if emulated else ("tab:red" if r.recommended else "tab:blue"),
                       edgecolors="tab:red" if r.recommended else "tab:blue", zorder=3)
            ax.annotate(r.candidate, (r.latency_p50_ms, r.map50_95), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = sorted((r for r in pts if r.pareto), key=lambda r: r.latency_p50_ms or 0.0)
        if front:
            ax.plot([r.latency_p50_ms for r in front], [r.map50_95 for r in front], "--", color="gray",
                    zorder=2, label="Pareto front")
        ax.set_xlabel(f"p50 latency per batch (ms) on {backend} ↓")
        ax.set_ylabel("mAP50-95 on the evaluation subset ↑")
        ax.set_title(f"{backend}: filled = accelerated/float, hollow = emulated, red = recommended", fontsize=9)
        ax.grid(alpha=0.3)
        if front:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def k_curve_plot(rows: list[Row], out: Path, backend: str = "ort-cpu") -> Path:
    """mAP50-95 and p50 latency against K for each K-scheme family."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    fams = sorted({r.scheme for r in rows if r.k and r.error is None})
    for fam in fams:
        pts = sorted({r.k: r for r in rows if r.scheme == fam and r.error is None
                      and not r.candidate.endswith("nohead")}.values(), key=lambda r: r.k)
        pts = [r for r in pts if r.map50_95 is not None]
        a1.plot([r.k for r in pts], [r.map50_95 for r in pts], "o-", label=fam)
        lat = [r for r in rows if r.scheme == fam and r.backend == backend and r.latency_p50_ms
               and not r.candidate.endswith("nohead")]
        lat = sorted(lat, key=lambda r: r.k)
        a2.plot([r.k for r in lat], [r.latency_p50_ms for r in lat], "o-", label=fam)
    fp32 = next((r for r in rows if r.candidate == "fp32" and r.map50_95 is not None), None)
    if fp32:
        a1.axhline(fp32.map50_95, color="gray", ls="--", label="FP32")
        lat32 = next((r for r in rows if r.candidate == "fp32" and r.backend == backend
                      and r.latency_p50_ms), None)
        if lat32:
            a2.axhline(lat32.latency_p50_ms, color="gray", ls="--", label="FP32")
    a1.set_xlabel("K (most sensitive nodes kept in float)")
    a1.set_ylabel("mAP50-95 ↑")
    a2.set_xlabel("K")
    a2.set_ylabel(f"p50 latency (ms) on {backend} ↓")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
