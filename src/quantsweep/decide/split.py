"""Which labelled images search and which confirm: disjoint, recorded, decided before any scoring.

With enough images (at least twice ``max_images``) the first ``max_images`` ids search and the
following ones (up to ``confirm_images``) form the confirmation pool, scored ``confirm_step`` at a
time. With fewer — a custom detector with a few hundred labelled images or less — the images are
split in two halves, stratified so that every class with two or more images appears in both,
and the confirmation pool is the second half. Below ``2 * MIN_HALF`` images no verdict on held-out
images is possible; the plan says how many it would take.

Example:
    >>> plan = plan_subsets([1, 2, 3, 4], {1: {7}, 2: {7}, 3: {8}, 4: {8}}, 100, 400, 100)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_HALF", "SubsetPlan", "plan_subsets", "stratified_halves"]

MIN_HALF = 20  # images: below this on either side, a held-out verdict is not worth its name


@dataclass(frozen=True)
class SubsetPlan:
    """The search subset, the confirmation pool in chunks, and how they were chosen."""

    search: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...]
    mode: str  # "pool" (search first, pool after) | "halves" (small dataset) | "none" (off or too few)
    note: str | None = None  # one line for the user when the plan is not the default one

    @property
    def confirm(self) -> list[int]:
        return [i for c in self.chunks for i in c]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "search_images": len(self.search), "confirm_images": len(self.confirm)}


def stratified_halves(ids: Sequence[int], classes: Mapping[int, set[int]]) -> tuple[list[int], list[int]]:
    """Split ``ids`` in two halves (sizes differ by at most one) so that each class with two or more
    images lands in both: images with the rarest classes are placed first, each on the side that
    has fewer of its rarest class so far (then the smaller side, then the first)."""
    freq = Counter(c for i in ids for c in classes.get(i, ()))
    cap = (len(ids) + 1) // 2

    def rarest(i: int) -> tuple[int, int]:
        cs = classes.get(i, set())
        return (min((freq[c] for c in cs), default=10**9), i)

    halves: tuple[list[int], list[int]] = ([], [])
    seen: tuple[Counter[int], Counter[int]] = (Counter(), Counter())
    for i in sorted(ids, key=rarest):
        cs = classes.get(i, set())
        key = min(cs, key=lambda c: (freq[c], c)) if cs else None

        def load(side: int, key: int | None = key) -> tuple[int, int, int]:
            return (seen[side][key] if key is not None else 0, len(halves[side]), side)

        order = sorted((0, 1), key=load)
        side = next(s for s in order if len(halves[s]) < cap)
        halves[side].append(i)
        seen[side].update(cs)
    return sorted(halves[0]), sorted(halves[1])


def plan_subsets(ids: Sequence[int], classes: Mapping[int, set[int]], max_images: int, confirm_images: int,
                 confirm_step: int, search_ids: Sequence[int] | None = None) -> SubsetPlan:
    """The search subset and the confirmation pool for the evaluation images ``ids``.

    Args:
        classes: image id -> the categories of its (non-crowd) boxes.
        search_ids: an explicit search subset (``--image-ids``): the pool is the other images.
    """
    all_ids = sorted(int(i) for i in ids)

    def chunked(pool: list[int]) -> tuple[tuple[int, ...], ...]:
        pool = pool[:confirm_images]
        return tuple(tuple(pool[k:k + confirm_step]) for k in range(0, len(pool), confirm_step))

    if search_ids is not None or confirm_images < 1:
        search = list(search_ids) if search_ids is not None else all_ids[:max_images]
        taken = set(search)
        chunks = chunked([i for i in all_ids if i not in taken]) if confirm_images >= 1 else ()
        note = None
        if confirm_images >= 1 and not chunks:
            note = (f"no evaluation images left after the {len(search)} of the search subset: "
                    "nothing can confirm the pick on held-out images")
        return SubsetPlan(tuple(search), chunks, "pool" if chunks else "none", note)
    if len(all_ids) >= 2 * max_images:
        return SubsetPlan(tuple(all_ids[:max_images]), chunked(all_ids[max_images:]), "pool")
    if len(all_ids) < 2 * MIN_HALF:
        return SubsetPlan(tuple(all_ids[:max_images]), (), "none",
                          f"only {len(all_ids)} labelled evaluation images: a held-out verdict needs at least "
                          f"{2 * MIN_HALF} ({MIN_HALF} to search, {MIN_HALF} to confirm); the pick is not confirmed")
    search, confirm = stratified_halves(all_ids, classes)
    return SubsetPlan(tuple(search), chunked(confirm), "halves",
                      f"{len(all_ids)} labelled evaluation images (< 2 × {max_images}): split in halves, "
                      f"{len(search)} to search and {len(confirm)} to confirm, every class in both where it has "
                      "two or more images")
