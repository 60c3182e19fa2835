"""Pure timing statistics: samples (ms per batch) -> named latency/throughput figures.

Example:
    >>> s = summarize([10.0, 11.0, 12.0, 30.0], batch=1)
    >>> s["latency_p50_ms"], s["throughput_ips"]
    (11.5, 86.96)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

__all__ = ["speedup_median", "SPREAD_WARN", "speedup_interval", "speedup_text", "summarize"]

SPREAD_WARN = 0.15  # relative spread above which a measurement is flagged as noisy


def summarize(samples_ms: Sequence[float], batch: int) -> dict[str, float | int]:
    """Latency percentiles (ms per batch), throughput (images/s at the median) and spread.

    ``spread`` is (p90 - p10) / p50: the relative width of the central 80 % of samples.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no timing samples")
    p10, p50, p90, p99 = np.percentile(a, [10, 50, 90, 99])
    return {
        "latency_p50_ms": round(float(p50), 3),
        "latency_p90_ms": round(float(p90), 3),
        "latency_p99_ms": round(float(p99), 3),
        "latency_mean_ms": round(float(a.mean()), 3),
        "latency_min_ms": round(float(a.min()), 3),
        "latency_max_ms": round(float(a.max()), 3),
        "latency_std_ms": round(float(a.std()), 3),
        "spread": round(float((p90 - p10) / p50), 4) if p50 > 0 else 0.0,
        "throughput_ips": round(1000.0 * batch / float(p50), 2) if p50 > 0 else 0.0,
        "samples": int(a.size),
    }


def speedup_interval(ref_ms: Sequence[float], cand_ms: Sequence[float],
                     confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free interval for the median speed-up of a candidate over its reference, from
    interleaved rounds: round ``i`` timed both (``ref_ms[i]``, ``cand_ms[i]``), so the per-round ratio
    ``ref / cand`` pairs out the machine's slow phases. The interval is the sign test's for the median
    ratio (order statistics ``k`` and ``n + 1 - k`` with ``P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2``);
    None with too few rounds for one (fewer than 6 at 95 %).

    Example:
        >>> speedup_interval([10.0] * 20, [5.0] * 10 + [10.0] * 10)
        (1.0, 2.0)
        >>> speedup_interval([10.0, 11.0], [5.0, 5.0]) is None
        True
    """
    n = min(len(ref_ms), len(cand_ms))
    tail = (1.0 - confidence) / 2.0
    # the largest k with P(B < k) <= tail: the k-th smallest ratio is a lower bound at that level
    k, cdf = 0, 0.0
    while k < n:
        p_k = math.comb(n, k) / 2.0 ** n
        if cdf + p_k > tail:
            break
        cdf += p_k
        k += 1
    if k == 0:
        return None
    ratios = sorted(r / c for r, c in zip(ref_ms[:n], cand_ms[:n], strict=True) if c > 0)
    if len(ratios) < n:
        return None
    return round(float(ratios[k - 1]), 3), round(float(ratios[n - k]), 3)


def speedup_median(ref_ms: Sequence[float], cand_ms: Sequence[float]) -> float | None:
    """The median of the interleaved rounds' paired ratios ``ref / cand``: the statistic
    :func:`speedup_interval` is the sign test's interval for, so the point lies inside its interval.

    Example:
        >>> speedup_median([10.0, 10.0, 12.0], [5.0, 10.0, 6.0])
        2.0
    """
    ratios = [r / c for r, c in zip(ref_ms, cand_ms) if c > 0]
    return round(float(statistics.median(ratios)), 3) if ratios else None


def speedup_text(speedup: float | None, low: float | None = None, high: float | None = None) -> str:
    """``1.42× [1.38, 1.47]`` (the interval when measured), ``—`` when there is no speed-up.

    Example:
        >>> speedup_text(1.4213, 1.38, 1.47), speedup_text(0.99), speedup_text(None)
        ('1.42× [1.38, 1.47]', '0.99×', '—')
    """
    if speedup is None:
        return "—"
    return f"{speedup:.2f}×" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")
