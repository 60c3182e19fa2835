"""Confirmation: re-score the finalists on images the selection never saw, under a fixed design.

Picking the best of many candidates on the images that scored them over-states the winner, so the
finalists are re-scored on the confirmation pool (:mod:`quantsweep.decide.split`), in rounds
(*looks*), against FP32 on the same images. The design (:mod:`quantsweep.decide.sequential`) is
fixed before the first look and keeps the chance of passing a model whose true loss exceeds the
budget at most α, over all looks and all finalists. After each look a finalist is

- ``pass``: ``z = (Δ̂ + budget)/SE`` clears the look's boundary;
- ``fail``: even the optimistic bound lies below the budget (an early stop; it passes nothing);
- ``undecided``: another round of images is scored — and when the pool runs out, the verdict says
  how many images would settle it (the standard error shrinks as 1/√N).

The design's finalist rule says in which order and at which level the finalists are tested
(:mod:`quantsweep.decide.sequential`): under ``bonferroni`` fastest first, the first that passes is
the pick and the slower ones are not scored (they could not be chosen); under ``fixed-sequence`` in
the declared order (safest first), stopping at the first that does not pass, the pick being the
fastest that passed.

Example:
    >>> d = make_design(0.05, (2, 4), 1)
    >>> c = confirm_adaptively("int8-ov", [[1, 2], [3, 4]], lambda ids: (-0.004, -0.008, 0.0, 0.001), 1.0, d)
    >>> c.verdict, c.images
    ('pass', 2)
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantsweep.decide.sequential import Design, judge_look
from quantsweep.results import JsonRecord, tested, what_they_confirm

__all__ = ["Confirmation", "ConfirmationRecord", "Score", "confirm_adaptively", "confirm_finalists", "images_to_settle", "paired_evidence"]

# ids -> (Δ̂, 95 % interval low, high, bootstrap standard error), paired against FP32 on those ids
Score = Callable[[list[int]], tuple[float, float, float, float]]


@dataclass(frozen=True)
class ConfirmationRecord:
    """``confirmation.json`` as a run wrote it: the design, the declared order, the speed finalists'
    verdicts (``results``) and the size picks' (``four_bit``)."""

    record: dict[str, Any]

    @property
    def finalists(self) -> list[str]:
        return list(self.record.get("finalists") or [])

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.record.get("results") or [])

    @property
    def target(self) -> str | None:
        return self.record.get("target")


@dataclass(frozen=True)
class Confirmation(JsonRecord):
    """A finalist's ΔmAP50-95 on the confirmation images (fractions: -0.01 = one point)."""

    candidate: str
    images: int
    delta: float
    low: float
    high: float
    verdict: str  # "pass" | "fail" | "undecided" | "error"
    needed: int | None = None  # undecided: about how many images would settle it
    error: str | None = None  # why it could not be scored
    se: float | None = None  # paired bootstrap standard error at the last look
    bound: float | None = None  # the design's lower confidence bound at the last look
    looks: list[dict[str, Any]] = field(default_factory=list)  # every look: images, Δ, SE, z, boundary, verdict

    def text(self, budget_points: float) -> str:
        """One line: what was measured on how many images, and the verdict."""
        if self.verdict == "error":
            return f"{self.candidate}: could not be scored on the confirmation images ({self.error})"
        d = self.to_dict()
        base = f"{self.candidate}: {tested(d, budget_points)} points on {self.images} confirmation images"
        if self.verdict == "pass":
            return f"{base} — within the {budget_points:.2f}-point budget"
        more = what_they_confirm(d, budget_points)
        if self.verdict == "fail":
            return "; ".join([f"{base} — misses the {budget_points:.2f}-point budget", *more])
        if not self.needed:
            more.append("its estimate sits about on the budget line: no affordable number of labelled images (≤ 100,000) would decide it")
        return "; ".join([f"{base} — undecided at {self.images} images", *more])


def paired_evidence(cand_map: float, base_map: float, cand_boot: Any, base_boot: Any) -> tuple[float, float, float, float]:
    """A look's evidence from two models' mAP and their paired bootstrap resamples on the same images:
    ``(Δ̂, 95 % percentile interval low, high, standard error of Δ)``."""
    import numpy as np

    from quantsweep.evaluate.bootstrap import delta_interval

    diffs = np.asarray(cand_boot, float) - np.asarray(base_boot, float)
    low, high = delta_interval(cand_boot, base_boot)
    return round(cand_map - base_map, 5), low, high, float(np.std(diffs, ddof=1))


def images_to_settle(images: int, delta: float, se: float, budget_points: float, critical: float,
                     cap: int = 100_000) -> int | None:
    """About how many images would put Δ̂ a boundary's worth of standard errors from the budget line
    (SE shrinks as 1/√N); None when the estimate sits on the line or the count exceeds ``cap`` (about
    COCO's whole train split: a loss estimated at the budget itself is not decided by more labels)."""
    distance = abs(delta + budget_points / 100.0)
    if distance <= 1e-9 or se <= 0:
        return None
    needed = math.ceil(images * (critical * se / distance) ** 2)
    return needed if needed <= cap else None


def confirm_adaptively(candidate: str, chunks: Sequence[Sequence[int]], score: Score, budget_points: float,
                       design: Design) -> Confirmation:
    """Score ``candidate`` on growing prefixes of ``chunks`` (one look each) until decided.

    Args:
        chunks: the confirmation pool in chunks; their cumulative sizes must be ``design.looks``.
        score: ``ids -> (Δ̂, low, high, se)``, paired against FP32 on exactly those ids.
    """
    if not chunks:
        raise ValueError("confirmation needs at least one chunk of images")
    sizes = tuple(itertools.accumulate(len(c) for c in chunks))
    if sizes != design.looks:
        raise ValueError(f"the chunks' cumulative sizes {sizes} are not the design's looks {design.looks}")
    ids: list[int] = []
    looks: list[dict[str, Any]] = []
    for li, chunk in enumerate(chunks):
        ids += list(chunk)
        delta, low, high, se = score(ids)
        look = judge_look(design, li, delta, se, budget_points)
        looks.append({"images": len(ids), "delta": delta, "se": round(se, 6), "z": round(look.z, 4),
                      "critical": round(look.critical, 4), "verdict": look.verdict})
        if look.verdict != "undecided":
            return Confirmation(candidate, len(ids), delta, low, high, look.verdict, se=se,
                                bound=round(look.bound, 6), looks=looks)
    return Confirmation(candidate, len(ids), delta, low, high, "undecided",
                        images_to_settle(len(ids), delta, se, budget_points, design.critical[-1]), se=se,
                        bound=round(look.bound, 6), looks=looks)


def confirm_finalists(finalists: Sequence[str], chunks: Sequence[Sequence[int]],
                      score: Callable[[str, list[int]], tuple[float, float, float, float]],
                      budget_points: float | Mapping[str, float], design: Design,
                      every: bool = False) -> list[Confirmation]:
    """Confirm ``finalists`` in the order given, by ``design.finalist_rule``; an unscorable one is an
    ``error`` verdict. ``budget_points``: one budget, or each finalist's own (the 4-bit families').

    - ``bonferroni`` (``finalists`` fastest first): until one passes (``every``: each of them, when each
      is its own question, as the 4-bit families are). ``design`` splits its α over every finalist
      (:func:`~quantsweep.decide.sequential.make_design` with their count), so stopping early or not
      changes no verdict's error rate.
    - ``fixed-sequence`` (``finalists`` in the order declared before the first look, safest first): each
      at the design's full α, stopping at the first that does not pass; the finalists after it are not
      tested (a pass there would not be covered by the α)."""
    sequence = design.finalist_rule == "fixed-sequence"
    out: list[Confirmation] = []
    for name in finalists:
        budget = budget_points if isinstance(budget_points, (int, float)) else budget_points[name]
        try:
            c = confirm_adaptively(name, chunks, functools.partial(score, name), budget, design)
        except Exception as exc:  # noqa: BLE001 - a finalist that cannot be scored is a verdict, not a crash
            from quantsweep.errors import first_line

            c = Confirmation(name, 0, 0.0, 0.0, 0.0, "error", error=first_line(exc))
        out.append(c)
        if (c.verdict != "pass") if sequence else (c.verdict == "pass" and not every):
            break
    return out
