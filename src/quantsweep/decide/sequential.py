"""The confirmation's statistical design, fixed before the first look: looks, α, its spending, the rule.

A finalist *passes* when the data reject H0: Δ < −budget (one-sided) — "its true loss exceeds the
budget" — at the design's level. Two things would inflate the chance of passing a model whose true
loss exceeds the budget, and the design accounts for both:

- **Repeated looks.** Images are added in rounds and the test is run after each. The one-sided α
  is *spent* across the planned looks by a Lan–DeMets spending function (O'Brien–Fleming by
  default: almost nothing early, nearly all of α at the last look; Pocock: evenly), and each
  look's critical value comes from the joint distribution of the sequential z statistics
  (Brownian motion at the looks' information fractions, simulated once with a fixed seed).
- **Several finalists.** Two rules keep the chance that *any* finalist with a true loss beyond the
  budget passes ≤ α (``FINALIST_RULES``):

  - ``bonferroni``: each finalist is tested at α / (number of finalists), fastest first, and the
    first that passes is the pick;
  - ``fixed-sequence``: the finalists are tested one after another in an order declared before the
    first look (safest first: by their search-subset lower bound), each at the full α, stopping at
    the first that does not pass; the pick is the fastest of those that passed. A false pass needs
    every hypothesis before it rejected, so the family-wise error stays ≤ α (Maurer, Hothorn &
    Lehmacher 1995; Westfall & Krishen 2001).

  :func:`finalist_rule` is the one the sweep uses, fixed by the design before any look: the coverage
  study (``benchmarks/coverage.py``, docs/benchmarks.md) measured both at the same false-confirmation
  rate. With one look (a small dataset's halves) the fixed sequence had the more power (40 held-out
  images: 0.21 vs 0.16 at a 0.5-point budget); with several looks Bonferroni had (400 images in 4
  looks: 0.73 vs 0.62 at a 1-point budget), its three chances at α/3 each beating one safest-first
  chain whose first undecided finalist ends it.

At a look with ``n`` images the statistic is ``z = (Δ̂ + budget) / SE`` with ``SE`` the paired
bootstrap's standard error; ``pass`` when ``z ≥ c_look``. ``fail`` (non-binding futility: it only
stops early, it never passes anything) when the upper bound ``Δ̂ + z_(1−α') · SE`` lies below the
budget line.

Example:
    >>> d = make_design(alpha=0.05, looks=(100, 200, 300, 400), finalists=3)
    >>> [round(c, 2) for c in d.critical]  # doctest: +SKIP
    [4.33, 3.06, 2.5, 2.17]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

__all__ = ["FINALIST_RULES", "finalist_rule", "SPEED_SHARE", "SPENDING", "alpha_split", "Design", "LookResult",
           "judge_look", "make_design", "spent"]

SPENDING = ("obf", "pocock")
FINALIST_RULES = ("bonferroni", "fixed-sequence")


def finalist_rule(looks: int) -> str:
    """The rule the sweep confirms its speed finalists by, given the design's number of looks: the
    fixed sequence with one look, Bonferroni with several (measured: docs/benchmarks.md, "How often a
    verdict is wrong").

    Example:
        >>> finalist_rule(1), finalist_rule(4)
        ('fixed-sequence', 'bonferroni')
    """
    return "fixed-sequence" if looks <= 1 else "bonferroni"


def _level_each(alpha: float, finalists: int, rule: str) -> float:
    """The one-sided level each finalist is tested at: α / finalists (Bonferroni), or the full α (fixed
    sequence: a finalist is only tested once every one before it passed)."""
    return alpha if rule == "fixed-sequence" else alpha / max(finalists, 1)


#: the share of a run's α (``--alpha``) its speed verdict is tested at, whatever else the run decides; the
#: 4-bit size verdicts (``--size``) split the rest, so a run's verdicts together are wrong with chance ≤ α
SPEED_SHARE = 0.8
_DRAWS = 200_000  # Brownian paths simulated to place the boundaries (fixed seed: the same design every time)
_NORMAL = NormalDist()


def spent(spending: str, fraction: float, alpha: float) -> float:
    """The α spent by information ``fraction`` (0..1] under a Lan–DeMets spending function."""
    if fraction <= 0:
        return 0.0
    fraction = min(fraction, 1.0)
    if spending == "obf":  # O'Brien–Fleming-like: 2 − 2Φ(z_(1−α/2) / √t), one-sided
        return 2.0 - 2.0 * _NORMAL.cdf(_NORMAL.inv_cdf(1 - alpha / 2) / math.sqrt(fraction))
    if spending == "pocock":  # Pocock-like: α ln(1 + (e − 1) t)
        return alpha * math.log(1 + (math.e - 1) * fraction)
    raise ValueError(f"unknown alpha spending {spending!r}; expected one of {SPENDING}")


def _boundaries(alpha: float, looks: Sequence[int], spending: str, seed: int = 20261201) -> tuple[float, ...]:
    """Critical z per look such that the chance of ever crossing under H0 (at the boundary) is α."""
    import numpy as np

    if len(looks) == 1:
        return (_NORMAL.inv_cdf(1 - alpha),)
    fractions = np.asarray(looks, float) / looks[-1]
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((_DRAWS, len(looks))) * np.sqrt(np.diff(np.r_[0.0, fractions]))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    alive = np.ones(_DRAWS, bool)
    out, before = [], 0.0
    for li, t in enumerate(fractions):
        target = spent(spending, float(t), alpha)
        cross = int(round((target - before) * _DRAWS))  # paths this look may stop (pass)
        values = np.sort(z[alive, li])[::-1]
        c = float(values[cross]) if 0 <= cross < len(values) else float("inf")
        c = max(c, _NORMAL.inv_cdf(1 - alpha))  # never laxer than a single look at the full α
        out.append(c)
        alive &= z[:, li] < c
        before = float((~alive).sum()) / _DRAWS  # spent so far (as simulated)
    return tuple(out)


@dataclass(frozen=True)
class Design:
    """A confirmation design: ``looks`` are the cumulative image counts at which the test is run."""

    alpha: float
    looks: tuple[int, ...]
    finalists: int
    spending: str
    resamples: int
    critical: tuple[float, ...]  # z boundary per look, at alpha_each
    finalist_rule: str = "bonferroni"  # one of FINALIST_RULES

    @property
    def alpha_each(self) -> float:
        """The one-sided level each finalist is tested at (:func:`_level_each`)."""
        return _level_each(self.alpha, self.finalists, self.finalist_rule)

    def nominal(self, look: int) -> float:
        """The one-sided nominal level of look ``look`` (0-based): 1 − Φ(c)."""
        return 1.0 - _NORMAL.cdf(self.critical[look])

    def rule(self) -> str:
        """The rule in one line (the report's and the terminal's)."""
        looks = "/".join(str(n) for n in self.looks)
        split = (f"{self.finalists} finalist(s) in a fixed order, safest first, each at the full α, stopping at "
                 "the first not passed" if self.finalist_rule == "fixed-sequence"
                 else f"÷{self.finalists} finalists, Bonferroni")
        return (f"one-sided test of Δ ≥ −budget at α={self.alpha:g} ({split}), "
                f"{len(self.looks)} look(s) at {looks} images, {self.spending.upper()} α-spending, "
                f"z = (Δ + budget)/SE ≥ {', '.join(f'{c:.2f}' for c in self.critical)}, "
                f"SE from {self.resamples} paired bootstrap resamples")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(alpha_each=self.alpha_each, nominal=[round(self.nominal(i), 6) for i in range(len(self.looks))],
                 rule=self.rule())
        return d


def alpha_split(alpha: float, size_verdicts: int = 0) -> dict[str, Any]:
    """How a run's ``alpha`` is split over its verdicts, fixed in advance and independent of the flags:
    the speed verdict always gets :data:`SPEED_SHARE` of it; the 4-bit size verdicts, when the run has
    any, split the rest (each finalist design then splits its share further by Bonferroni).

    Example:
        >>> alpha_split(0.05, 2)["size_each"]
        0.005
    """
    speed = round(alpha * SPEED_SHARE, 10)
    size = round(alpha - speed, 10)
    return {"run_alpha": alpha, "speed": speed, "size": size,
            "size_each": round(size / size_verdicts, 10) if size_verdicts else None,
            "rule": f"speed verdict at {SPEED_SHARE:g} α, the 4-bit size verdicts split {1 - SPEED_SHARE:g} α "
                    "(Bonferroni): the chance that any verdict of the run is wrong is at most α"}


def make_design(alpha: float, looks: Sequence[int], finalists: int, spending: str = "obf",
                resamples: int = 2000, finalist_rule: str = "bonferroni") -> Design:
    """The design for ``looks`` (cumulative images, increasing) and ``finalists`` hypotheses, tested by
    ``finalist_rule`` (one of :data:`FINALIST_RULES`)."""
    if finalist_rule not in FINALIST_RULES:
        raise ValueError(f"unknown finalist rule {finalist_rule!r}; expected one of {FINALIST_RULES}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (got {alpha})")
    if spending not in SPENDING:
        raise ValueError(f"unknown alpha spending {spending!r}; expected one of {SPENDING}")
    looks = tuple(int(n) for n in looks)
    if not looks or any(b <= a for a, b in zip(looks, looks[1:])) or looks[0] < 1:
        raise ValueError(f"looks must be increasing positive image counts (got {looks})")
    m = max(int(finalists), 1)
    return Design(alpha, looks, m, spending, resamples,
                  _boundaries(_level_each(alpha, m, finalist_rule), looks, spending), finalist_rule)


@dataclass(frozen=True)
class LookResult:
    """One look's evidence and verdict (fractions of mAP: −0.01 = one point)."""

    verdict: str  # "pass" | "fail" | "undecided"
    z: float
    critical: float
    bound: float  # the design's lower confidence bound: Δ̂ − c · SE


def judge_look(design: Design, look: int, delta: float, se: float, budget_points: float) -> LookResult:
    """The verdict at look ``look`` (0-based) of a finalist with paired Δ̂ and bootstrap ``se``."""
    budget = budget_points / 100.0
    c = design.critical[look]
    if se <= 0:  # identical predictions on every resample: the estimate is the truth on these images
        z = math.inf if delta >= -budget else -math.inf
    else:
        z = (delta + budget) / se
    bound = delta - c * se
    if z >= c:
        return LookResult("pass", z, c, bound)
    futility = delta + _NORMAL.inv_cdf(1 - design.alpha_each) * max(se, 0.0)
    return LookResult("fail" if futility < -budget else "undecided", z, c, bound)
