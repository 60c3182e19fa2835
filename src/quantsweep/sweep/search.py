"""The K search: the fewest float-kept nodes that bring a placement within the accuracy budget.

A placement (a K-capable scheme on one target runtime) is probed at K = 0 first. If its ΔmAP
interval's lower bound misses the budget, K grows geometrically (1, 2, 4, ... up to the rankable
nodes) until a probe qualifies, then bisects between the last miss and the first hit. Every probe
is a *measured* evaluation, recorded in order in the trace; the search stops at ``max_evals``
probes. Accuracy need not be monotone in K: the answer is the smallest probed K that qualified,
and the trace shows every probe, so a non-monotone curve is visible rather than assumed away.

What "qualifies" means is the caller's predicate; :func:`within_budget` builds the usual one: the
ΔmAP interval's lower bound *expected on the confirmation images* keeps the budget. The search
subset is small, so its own lower bound is too wide to decide on (at 100 images it is about as
wide as a 1-point budget); the point estimate alone ignores that the finalists must then pass a
held-out interval. The expected bound shrinks the search interval's half-width by
``sqrt(n_search / n_confirm)`` (the standard error's scaling with images): a probe qualifies when
it leaves room for the interval the confirmation will measure.

This module is pure logic over an ``evaluate(k) -> Probe`` callable: the sweep supplies one that
builds and scores the candidate (and caches finished probes in its step store).

Example:
    >>> result = search_k(lambda k: Probe(k, delta=-0.02 + 0.004 * k), within_budget(1.0), k_max=40)
    >>> result.best.k, [p.k for p in result.trace]
    (3, [0, 1, 2, 4, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MIN_PROGRESS", "Probe", "SearchResult", "expected_low", "float_costs", "half_damage_k", "latency_order",
           "predicted_k", "search_k", "within_budget"]


@dataclass(frozen=True)
class Probe:
    """One measured point of the search.

    Attributes:
        k: nodes kept in float beyond the head policy.
        delta: ΔmAP50-95's point estimate vs FP32 (a fraction: -0.01 = one point); None when the
            candidate could not be evaluated.
        low, high: its paired 95 % interval on the search subset (None: not computed).
        error: why the probe failed, when it did.
    """

    k: int
    delta: float | None
    low: float | None = None
    high: float | None = None
    error: str | None = None


def expected_low(p: Probe, shrink: float) -> float | None:
    """The lower bound ``p`` leaves expected on the confirmation images: ``delta - shrink * (delta -
    low)`` (the point estimate when there is no interval); None without a measured delta."""
    if p.delta is None:
        return None
    return p.delta - shrink * (p.delta - p.low) if p.low is not None else p.delta


def within_budget(budget_points: float, shrink: float = 0.0) -> Callable[[Probe], bool]:
    """A probe qualifies when ``delta - shrink * (delta - low)`` keeps the budget.

    ``shrink`` = 0 judges the point estimate, 1 the search subset's own lower bound, and
    ``sqrt(n_search / n_confirm)`` the lower bound expected on ``n_confirm`` confirmation images.
    """
    def accept(p: Probe) -> bool:
        low = expected_low(p, shrink)
        return p.error is None and low is not None and low >= -budget_points / 100.0 - 1e-12

    return accept


@dataclass(frozen=True)
class SearchResult:
    """The probes in the order they ran, the smallest qualifying one, and why the search stopped."""

    trace: tuple[Probe, ...]
    best: Probe | None
    stopped: str  # "qualified at K=0", "smallest qualifying K found", "no K qualifies", "max_evals reached"
    evaluations: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evaluations", len(self.trace))


#: the share of K=0's gap to the target that two probes beyond K=0 must close, or the search gives up
MIN_PROGRESS = 0.25


def search_k(evaluate: Callable[[int], Probe], accept: Callable[[Probe], bool], k_max: int,
             max_evals: int = 8, target_delta: float | None = None, first_k: int = 1) -> SearchResult:
    """Find the smallest K in ``[0, k_max]`` whose probe is accepted, with measured probes.

    Args:
        evaluate: builds and measures the candidate with K float-kept nodes.
        accept: whether a probe keeps the budget (e.g. :func:`within_budget`).
        k_max: the largest K there is (rankable nodes of the model).
        max_evals: at most this many probes.
        target_delta: the ΔmAP a probe must reach (e.g. minus the budget); with it, the search
            gives up ("no progress") when two probes beyond K=0 have not closed :data:`MIN_PROGRESS`
            of the K=0 probe's gap to it: the loss does not come from a few sensitive layers (a
            runtime that miscomputes the whole quantized graph, say), so more float layers will
            not buy it back.
        first_k: the first K probed after K=0 (the geometric growth starts there; a caller that can
            predict the K it needs skips the probes below it).

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
        hits = [p for p in trace if accept(p)]
        return min(hits, key=lambda p: p.k) if hits else None

    if max_evals < 1:
        return SearchResult((), None, "max_evals reached")
    if accept(probe(0)):
        return SearchResult(tuple(trace), trace[0], "qualified at K=0")
    miss, hit, k = 0, None, max(1, first_k)
    base = trace[0].delta
    while hit is None:  # grow K geometrically until a probe qualifies
        if len(trace) >= max_evals:
            return SearchResult(tuple(trace), smallest(), "max_evals reached")
        if target_delta is not None and base is not None and len(trace) >= 3:
            closed = max((p.delta for p in trace[1:] if p.delta is not None), default=base) - base
            if closed < MIN_PROGRESS * (target_delta - base):
                return SearchResult(tuple(trace), None, "no progress: float layers do not close the gap")
        k = min(k, k_max)
        if accept(probe(k)):
            hit = k
        elif k >= k_max:
            return SearchResult(tuple(trace), None, "no K qualifies")
        else:
            miss, k = k, 2 * k
    while hit - miss > 1:  # bisect (miss, hit]: the smallest qualifying K
        if len(trace) >= max_evals:
            return SearchResult(tuple(trace), smallest(), "max_evals reached")
        mid = (miss + hit) // 2
        if accept(probe(mid)):
            hit = mid
        else:
            miss = mid
    return SearchResult(tuple(trace), smallest(), "smallest qualifying K found")


def half_damage_k(sensitivity: dict[str, Any]) -> tuple[int, float]:
    """The fewest ranked nodes whose measured damage (``score``) adds up to half of ``damage_full`` — the
    hedge probe's K — or 0 when the measured nodes do not reach half (or nothing was measured); and the
    share of the damage the measured nodes remove.

    Example:
        >>> half_damage_k({"ranking": [{"score": 0.3}, {"score": 0.3}, {"score": None}], "damage_full": 1.0})
        (2, 0.6)
    """
    full, removed = float(sensitivity.get("damage_full") or 0.0), 0.0
    for k, entry in enumerate(sensitivity.get("ranking") or [], start=1):
        if entry.get("score") is None:
            break
        removed += max(float(entry["score"]), 0.0)
        if full > 0 and removed >= 0.5 * full:
            return k, removed / full
    return 0, removed / full if full > 0 else 0.0


def predicted_k(sensitivity: dict[str, Any], p0: Probe, budget_points: float, shrink: float) -> int:
    """The K a ranking predicts for a placement whose K=0 probe is ``p0``: the fewest ranked nodes whose
    measured damage (``score``, a share of ``damage_full``), removed, would lift K=0's expected lower
    bound (:func:`within_budget`) to the budget, assuming the loss scales with the damage left.
    1 when K=0 has no measured delta or the ranking no damage; every measured node when none suffice.

    Example:
        >>> ranking = [{"score": 0.5}, {"score": 0.3}, {"score": 0.1}, {"score": None}]
        >>> predicted_k({"ranking": ranking, "damage_full": 1.0}, Probe(0, -0.04, -0.05), 2.0, 1.0)
        2
    """
    full = float(sensitivity.get("damage_full") or 0.0)
    low = expected_low(p0, shrink)
    if low is None or full <= 0 or low >= -budget_points / 100:
        return 1
    need = 1.0 - (budget_points / 100) / -low  # the share of the damage that must go
    removed, k = 0.0, 0
    for k, entry in enumerate(sensitivity.get("ranking") or [], start=1):
        if entry.get("score") is None:
            return max(k - 1, 1)
        removed += max(float(entry["score"]), 0.0) / full
        if removed >= need:
            return k
    return max(k, 1)


def float_costs(fp32_nodes: list[dict[str, Any]], quant_nodes: list[dict[str, Any]],
                names: list[str]) -> dict[str, float]:
    """What keeping each ONNX node of ``names`` float costs on the runtime, in ms per call: its time in the
    FP32 profile minus its time in the quantized one (each a profile's ``every_node``; an ONNX node is every
    executed node named after it, ``<name>`` or ``<name>/...``, as OpenVINO names what it converted). Nodes
    the profiles do not show are left out.

    Example:
        >>> fp32 = [{"name": "/m.0/Conv/WithoutBiases", "ms": 0.9}, {"name": "/m.1/Conv", "ms": 0.2}]
        >>> int8 = [{"name": "/m.0/Conv/WithoutBiases", "ms": 0.5}, {"name": "/m.1/Conv", "ms": 0.19}]
        >>> float_costs(fp32, int8, ["/m.0/Conv", "/m.1/Conv", "/m.2/Conv"])
        {'/m.0/Conv': 0.4, '/m.1/Conv': 0.01}
    """
    def time_of(nodes: list[dict[str, Any]], name: str) -> float | None:
        hits = [n["ms"] for n in nodes if n["name"] == name or n["name"].startswith(name + "/")]
        return sum(hits) if hits else None

    out = {}
    for name in names:
        f, q = time_of(fp32_nodes, name), time_of(quant_nodes, name)
        if f is not None and q is not None:
            out[name] = round(max(f - q, 0.0), 5)
    return out


def latency_order(ranking: list[dict[str, Any]], cost_ms: dict[str, float],
                  floor_ms: float = 0.01) -> list[dict[str, Any]]:
    """The ranking reordered by measured damage removed per millisecond of float time (``score /
    max(cost, floor_ms)``), best first: the nodes that buy back the most accuracy for the least speed.
    Nodes without a measured score or a cost keep their order after the others.

    Example:
        >>> ranking = [{"node": "a", "score": 0.6}, {"node": "b", "score": 0.3}, {"node": "c", "score": None}]
        >>> [n["node"] for n in latency_order(ranking, {"a": 1.0, "b": 0.1})]
        ['b', 'a', 'c']
    """
    priced = [n for n in ranking if n.get("score") is not None and n["node"] in cost_ms]
    rest = [n for n in ranking if n not in priced]
    priced.sort(key=lambda n: -max(float(n["score"]), 0.0) / max(cost_ms[n["node"]], floor_ms))
    return priced + rest
