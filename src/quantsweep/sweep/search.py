"""The K search: the fewest float-kept nodes that bring a placement within the accuracy budget.

A placement (a K-capable scheme on one target runtime) is probed at K = 0 first. If its ΔmAP
interval's lower bound misses the budget, K grows geometrically (1, 2, 4, ... up to the rankable
nodes) until a probe qualifies, then bisects between the last miss and the first hit. Every probe
is a *measured* evaluation, recorded in order in the trace; the search stops at ``max_evals``
probes. Accuracy need not be monotone in K: the answer is the smallest probed K that qualified,
and the trace shows every probe, so a non-monotone curve is visible rather than assumed away.

This module is pure logic over an ``evaluate(k) -> Probe`` callable: the sweep supplies one that
builds, scores and times the candidate (and caches finished probes in its step store).

Example:
    >>> result = search_k(lambda k: Probe(k, delta_low=-0.02 + 0.004 * k), budget_points=1.0, k_max=40)
    >>> result.best.k, [p.k for p in result.trace]
    (3, [0, 1, 2, 4, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Probe", "SearchResult", "search_k"]


@dataclass(frozen=True)
class Probe:
    """One measured point of the search.

    Attributes:
        k: nodes kept in float beyond the head policy.
        delta_low: the lower bound of ΔmAP50-95's interval (a fraction: -0.01 = one point); None
            when the candidate could not be evaluated.
        delta: ΔmAP50-95's point estimate.
        latency_ms: p50 latency on the target runtime.
        label: how the target runtime ran it (``accelerated``, ``emulated``, ...).
        error: why the probe failed, when it did.
    """

    k: int
    delta_low: float | None
    delta: float | None = None
    latency_ms: float | None = None
    label: str | None = None
    error: str | None = None

    def qualifies(self, budget_points: float) -> bool:
        return self.error is None and self.delta_low is not None and self.delta_low >= -budget_points / 100.0


@dataclass(frozen=True)
class SearchResult:
    """The probes in the order they ran, the smallest qualifying one, and why the search stopped."""

    trace: tuple[Probe, ...]
    best: Probe | None
    stopped: str  # "qualified at K=0", "smallest qualifying K found", "no K qualifies", "max_evals reached"
    evaluations: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evaluations", len(self.trace))


def search_k(evaluate: Callable[[int], Probe], budget_points: float, k_max: int,
             max_evals: int = 8) -> SearchResult:
    """Find the smallest K in ``[0, k_max]`` whose probe keeps the budget, with measured probes.

    Args:
        evaluate: builds and measures the candidate with K float-kept nodes.
        budget_points: the largest accepted mAP50-95 loss, in points (judged on ``delta_low``).
        k_max: the largest K there is (rankable nodes of the model).
        max_evals: at most this many probes.

    Returns:
        The trace and the smallest probed K that qualified (None when none did).
    """
    trace: list[Probe] = []
    seen: dict[int, Probe] = {}

    def probe(k: int) -> Probe:
        if k not in seen:
            seen[k] = evaluate(k)
            trace.append(seen[k])
        return seen[k]

    def smallest() -> Probe | None:
        hits = [p for p in trace if p.qualifies(budget_points)]
        return min(hits, key=lambda p: p.k) if hits else None

    if max_evals < 1:
        return SearchResult((), None, "max_evals reached")
    if probe(0).qualifies(budget_points):
        return SearchResult(tuple(trace), trace[0], "qualified at K=0")
    miss, hit, k = 0, None, 1
    while hit is None:  # grow K geometrically until a probe qualifies
        if len(trace) >= max_evals:
            return SearchResult(tuple(trace), smallest(), "max_evals reached")
        k = min(k, k_max)
        if probe(k).qualifies(budget_points):
            hit = k
        elif k >= k_max:
            return SearchResult(tuple(trace), None, "no K qualifies")
        else:
            miss, k = k, 2 * k
    while hit - miss > 1:  # bisect (miss, hit]: the smallest qualifying K
        if len(trace) >= max_evals:
            return SearchResult(tuple(trace), smallest(), "max_evals reached")
        mid = (miss + hit) // 2
        if probe(mid).qualifies(budget_points):
            hit = mid
        else:
            miss = mid
    return SearchResult(tuple(trace), smallest(), "smallest qualifying K found")
