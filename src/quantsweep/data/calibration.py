"""Calibration images: chosen from a calib split, never from the evaluation subset.

They go through :func:`quantsweep.data.iter_batches`, the same preprocessing as evaluation.

Example:
    >>> calib = CalibSet.from_dataset(calib_ds, count=64, hw=(320, 320), eval_ids=subset)  # doctest: +SKIP
    >>> arr = calib.array()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from quantsweep.data.coco import Dataset
from quantsweep.data.letterbox import iter_batches
from quantsweep.errors import QuantsweepError

__all__ = ["CalibSet", "ids_hash"]


def ids_hash(ids: Sequence[int]) -> str:
    """Short, order-sensitive hash of an id list (recorded in every scheme JSON)."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CalibSet:
    """The calibration images of a run: a dataset, the chosen ids and the network input size."""

    dataset: Dataset
    ids: tuple[int, ...]
    hw: tuple[int, int]
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dataset(cls, ds: Dataset, count: int, hw: tuple[int, int],
                     eval_ids: Sequence[int] = (), eval_dataset: Dataset | None = None) -> CalibSet:
        """The first ``count`` ids of ``ds``; refuses any overlap with the evaluation subset.

        Overlap is judged by image file (same folder and file name) when ``eval_dataset`` is
        given, and by id when the two come from the same annotations file.
        """
        if count < 1:
            raise QuantsweepError(f"--calib-images must be at least 1 (got {count})", "pass e.g. 64")
        ids = tuple(sorted(ds.images)[:count])
        if not ids:
            raise QuantsweepError(f"calibration set {ds.annotations} has no images",
                                  "point --calib-images at a folder/split with images")
        overlap = cls._overlap(ds, ids, eval_ids, eval_dataset)
        if overlap:
            raise QuantsweepError(
                f"{len(overlap)} calibration image(s) are also in the evaluation subset "
                f"(e.g. {overlap[0]}) — calibrating on evaluation images inflates accuracy",
                "use a calibration split disjoint from the evaluation subset")
        return cls(ds, ids, hw)

    @staticmethod
    def _overlap(ds: Dataset, ids: Sequence[int], eval_ids: Sequence[int],
                 eval_ds: Dataset | None) -> list[str]:
        if not eval_ids:
            return []
        if eval_ds is None or eval_ds.annotations.resolve() == ds.annotations.resolve():
            common = sorted(set(ids) & set(eval_ids))
            return [str(ds.images_dir / ds.images[i]["file_name"]) for i in common]
        calib_files = {(ds.images_dir / ds.images[i]["file_name"]).resolve() for i in ids}
        eval_files = {(eval_ds.images_dir / eval_ds.images[i]["file_name"]).resolve() for i in eval_ids}
        return sorted(str(p) for p in calib_files & eval_files)

    @property
    def ids_hash(self) -> str:
        return ids_hash(self.ids)

    def batches(self, batch: int = 1, limit: int | None = None) -> Iterator[np.ndarray]:
        """Stream preprocessed NCHW float32 batches (bounded memory)."""
        ids = self.ids[:limit] if limit else self.ids
        for b in iter_batches(self.dataset, ids, self.hw, batch, pad_to_batch=True):
            yield b.pixels

    def array(self, limit: int | None = None) -> np.ndarray:
        """All (or the first ``limit``) calibration images as one ``[N,3,H,W]`` array (cached)."""
        key = str(limit)
        if key not in self._cache:
            self._cache[key] = np.concatenate(list(self.batches(8, limit)))[: limit or len(self.ids)]
        return self._cache[key]
