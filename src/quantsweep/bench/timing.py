"""Pure timing statistics: samples (ms per batch) -> named latency/throughput figures.

Example:
    >>> s = summarize([10.0, 11.0, 12.0, 30.0], batch=1)
    >>> s["latency_p50_ms"], s["throughput_ips"]
    (11.5, 86.96)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SPREAD_WARN", "summarize"]

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
