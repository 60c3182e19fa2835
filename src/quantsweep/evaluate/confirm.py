"""Confirmation: re-score the finalists on images the selection never saw, adding images until decided.

Picking the best of many candidates on the images that scored them over-states the winner, and
on ~100 images the paired interval of ΔmAP is about as wide as a 1-point budget. So the
evaluation images are split in two, disjoint and recorded: the *search* subset (first
``max_images`` ids) on which every candidate is scored and finalists are chosen, and the
*confirmation* pool (the following ids) on which only the finalists and FP32 are scored, in
chunks: after each chunk the paired bootstrap interval on all confirmation images so far decides

- ``pass``: the interval's lower bound is within the budget;
- ``fail``: even its upper bound misses the budget;
- ``undecided``: it straddles the budget line, so another chunk is scored — and when the pool
  runs out, the verdict says how many images would settle it (the half-width shrinks as 1/√N).

The loop is pure here (:func:`confirm_adaptively` takes a scoring callable); the sweep's stage
scores chunks through its step store, so an interrupted confirmation resumes.

Example:
    >>> c = confirm_adaptively("int8-ov", [[1, 2], [3, 4]], lambda ids: (-0.004, -0.008, 0.0), 1.0)
    >>> c.verdict, c.images
    ('pass', 2)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Confirmation", "confirm_adaptively", "images_to_settle", "judge", "points", "split_pool"]


def points(delta: float, low: float | None = None, high: float | None = None, unit: str = "") -> str:
    """A ΔmAP fraction in signed points, with its interval when given: ``-0.60 points [-1.00, -0.22]``."""
    text = f"{100 * delta:+.2f}{unit}"
    return text if low is None or high is None else f"{text} [{100 * low:+.2f}, {100 * high:+.2f}]"


@dataclass(frozen=True)
class Confirmation:
    """A finalist's ΔmAP50-95 on the confirmation images (fractions: -0.01 = one point)."""

    candidate: str
    images: int
    delta: float
    low: float
    high: float
    verdict: str  # "pass" | "fail" | "undecided" | "error"
    needed: int | None = None  # undecided: about how many images would settle it
    error: str | None = None  # why it could not be scored

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Confirmation:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def text(self, budget_points: float) -> str:
        """One line: what was measured on how many images, and the verdict."""
        if self.verdict == "error":
            return f"{self.candidate}: could not be scored on the confirmation images ({self.error})"
        base = f"{self.candidate}: Δ {points(self.delta, self.low, self.high, ' points')} on {self.images} confirmation images"
        if self.verdict == "pass":
            return f"{base} — within the {budget_points:.2f}-point budget"
        if self.verdict == "fail":
            return f"{base} — misses the {budget_points:.2f}-point budget"
        settle = f"about {self.needed} would settle it" if self.needed else "no affordable number would settle it"
        return f"{base} — undecided at {self.images} images; {settle}"


def split_pool(all_ids: Sequence[int], search_ids: Sequence[int], size: int, step: int) -> list[list[int]]:
    """The confirmation pool in chunks: the ids after the search subset (ascending), disjoint from it.

    Returns:
        Chunks of ``step`` ids covering at most ``size`` ids (empty when confirmation is off).
    """
    if size < 1 or step < 1:
        return []
    taken = set(search_ids)
    pool = [i for i in sorted(all_ids) if i not in taken][:size]
    return [pool[i:i + step] for i in range(0, len(pool), step)]


def judge(low: float, high: float, budget_points: float) -> str:
    """``pass`` when the interval clears the budget, ``fail`` when it lies below it, else ``undecided``."""
    budget = budget_points / 100.0
    if low >= -budget:
        return "pass"
    if high < -budget:
        return "fail"
    return "undecided"


def images_to_settle(images: int, delta: float, low: float, high: float, budget_points: float,
                     cap: int = 1_000_000) -> int | None:
    """About how many images would put the interval wholly on one side of the budget line.

    The half-width shrinks as 1/√N around the point estimate; None when the estimate sits on the
    line (no number would) or the answer exceeds ``cap``.
    """
    distance = abs(delta + budget_points / 100.0)
    half = (high - low) / 2
    if distance <= 1e-9 or half <= 0:
        return None
    needed = math.ceil(images * (half / distance) ** 2)
    return needed if needed <= cap else None


def confirm_adaptively(candidate: str, chunks: Sequence[Sequence[int]],
                       score: Callable[[list[int]], tuple[float, float, float]],
                       budget_points: float) -> Confirmation:
    """Score ``candidate`` on growing prefixes of ``chunks`` until the verdict is decided.

    Args:
        candidate: its name.
        chunks: the confirmation pool in chunks (see :func:`split_pool`); must not be empty.
        score: ``ids -> (delta, low, high)``, paired against FP32 on exactly those ids.
        budget_points: the accuracy budget in mAP points.
    """
    if not chunks:
        raise ValueError("confirmation needs at least one chunk of images")
    ids: list[int] = []
    for chunk in chunks:
        ids += list(chunk)
        delta, low, high = score(ids)
        verdict = judge(low, high, budget_points)
        if verdict != "undecided":
            return Confirmation(candidate, len(ids), delta, low, high, verdict)
    return Confirmation(candidate, len(ids), delta, low, high, "undecided",
                        images_to_settle(len(ids), delta, low, high, budget_points))
