"""Calibration images: a calib split or any folder of images, never the evaluation subset.

Calibration reads no label. Images come from a COCO split (``from_dataset``: the first ``count``
ids) or from a plain folder searched recursively (``from_folder``: the first ``count`` files by
relative path). Overlap with the evaluation subset is refused: by id within one annotations file,
otherwise by file (the same path, or the same name and size — a copied image). They go through
:func:`quantsweep.data.letterbox.iter_batches`, the same preprocessing as evaluation.

Example:
    >>> calib = CalibSet.from_folder(Path("photos/"), count=64, hw=(640, 640), eval_dataset=val, eval_ids=ids)  # doctest: +SKIP
    >>> arr = calib.array()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.data.coco import Dataset
from quantsweep.data.folder import ImageFolder
from quantsweep.data.letterbox import ImageSource, iter_batches
from quantsweep.errors import QuantsweepError

__all__ = ["CalibSet", "ids_hash"]


def ids_hash(ids: Sequence[Any]) -> str:
    """Short, order-sensitive hash of an id list (recorded in every scheme JSON)."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _overlap(files: list[Path], eval_files: list[Path]) -> list[str]:
    """Calibration files that are evaluation files: the same path, or the same name and size."""
    def key(p: Path) -> tuple[str, int]:
        return p.name, p.stat().st_size if p.is_file() else -1

    by_path = {p.resolve() for p in eval_files}
    by_copy = {key(p) for p in eval_files}
    return sorted(str(p) for p in files if p.resolve() in by_path or key(p) in by_copy)


@dataclass(frozen=True)
class CalibSet:
    """The calibration images of a run.

    Attributes:
        source: where the images are read (a COCO dataset, or an image folder).
        ids: their keys in order (COCO ids, or file paths relative to the folder).
        hw: the network input size they are letterboxed to.
        origin: what to record as their provenance (the annotations file, or the folder).
    """

    source: ImageSource
    ids: tuple[Any, ...]
    hw: tuple[int, int]
    origin: Path
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dataset(cls, ds: Dataset, count: int, hw: tuple[int, int],
                     eval_ids: Sequence[int] = (), eval_dataset: Dataset | None = None) -> CalibSet:
        """The first ``count`` ids of ``ds``; refuses any overlap with the evaluation subset.

        Overlap is judged by id when the two come from the same annotations file (or
        ``eval_dataset`` is None), else by file.
        """
        _check_count(count)
        ids = tuple(sorted(ds.images)[:count])
        if not ids:
            raise QuantsweepError(f"calibration set {ds.annotations} has no images",
                                  "point the calibration folder at a split with images")
        if eval_ids and (eval_dataset is None or eval_dataset.annotations.resolve() == ds.annotations.resolve()):
            overlap = [str(ds.path(i)) for i in sorted(set(ids) & set(eval_ids))]
        elif eval_ids and eval_dataset is not None:
            overlap = _overlap([ds.path(i) for i in ids], [eval_dataset.path(i) for i in eval_ids])
        else:
            overlap = []
        _refuse(overlap)
        return cls(ds, ids, hw, ds.annotations)

    @classmethod
    def from_folder(cls, folder: Path, count: int, hw: tuple[int, int], eval_ids: Sequence[int] = (),
                    eval_dataset: Dataset | None = None) -> CalibSet:
        """The first ``count`` images under ``folder`` (recursively, by relative path); no labels needed.

        Raises:
            QuantsweepError: no images, or one of them is in the evaluation subset.
        """
        _check_count(count)
        images = ImageFolder.scan(folder)
        keys = images.keys[:count]
        if eval_ids and eval_dataset is not None:
            _refuse(_overlap([images.path(k) for k in keys], [eval_dataset.path(i) for i in eval_ids]))
        return cls(images, keys, hw, images.root)

    @property
    def ids_hash(self) -> str:
        return ids_hash(self.ids)

    def batches(self, batch: int = 1, limit: int | None = None) -> Iterator[np.ndarray]:
        """Stream preprocessed NCHW float32 batches (bounded memory)."""
        ids = self.ids[:limit] if limit else self.ids
        for b in iter_batches(self.source, ids, self.hw, batch, pad_to_batch=True):
            yield b.pixels

    def array(self, limit: int | None = None) -> np.ndarray:
        """All (or the first ``limit``) calibration images as one ``[N,3,H,W]`` array (cached)."""
        key = str(limit)
        if key not in self._cache:
            self._cache[key] = np.concatenate(list(self.batches(8, limit)))[: limit or len(self.ids)]
        return self._cache[key]


def _check_count(count: int) -> None:
    if count < 1:
        raise QuantsweepError(f"calibration image count must be at least 1 (got {count})", "pass e.g. 64")


def _refuse(overlap: list[str]) -> None:
    if overlap:
        raise QuantsweepError(
            f"{len(overlap)} calibration image(s) are also in the evaluation subset "
            f"(e.g. {overlap[0]}) — calibrating on evaluation images inflates accuracy",
            "use a calibration split disjoint from the evaluation subset")
