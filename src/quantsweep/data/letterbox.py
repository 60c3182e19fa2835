"""The one preprocessing: calibration and evaluation both go through :func:`iter_batches`.

A quantized model is calibrated on exactly the tensors it is later evaluated with.
Preprocessing is Ultralytics' predictor letterbox: scale to fit (up or down), INTER_LINEAR,
centred, pad value 114, BGR->RGB, /255, NCHW float32. Images are streamed one batch at a time
(bounded memory).

Example:
    >>> for b in iter_batches(ds, ids, (320, 320), batch=8):  # doctest: +SKIP
    ...     out = session.run(b.pixels)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from quantsweep.errors import QuantsweepError

__all__ = ["PAD_VALUE", "PIXEL_MAX", "Batch", "ImageSource", "LetterboxMeta", "iter_batches", "letterbox", "to_network", "to_pixels"]


PAD_VALUE = 114
#: the network input is 8-bit pixels divided by this: every input value is ``k / PIXEL_MAX``, k = 0..255
PIXEL_MAX = 255


@dataclass(frozen=True)
class LetterboxMeta:
    """How an original image was placed into the network input (for mapping boxes back)."""

    orig_hw: tuple[int, int]
    gain: float
    pad_left: int
    pad_top: int


def letterbox(img: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxMeta]:
    """Ultralytics-identical letterbox of a BGR image into ``hw`` (returns HxWx3 uint8 BGR)."""
    import cv2

    h0, w0 = img.shape[:2]
    gain = min(hw[0] / h0, hw[1] / w0)
    new_w, new_h = max(round(w0 * gain), 1), max(round(h0 * gain), 1)
    dw, dh = (hw[1] - new_w) / 2, (hw[0] - new_h) / 2
    if (new_w, new_h) != (w0, h0):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                             value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return out, LetterboxMeta((h0, w0), gain, left, top)


@dataclass(frozen=True)
class Batch:
    """One network input batch: ``pixels`` is NCHW float32 RGB in [0, 1]."""

    ids: list[Any]
    pixels: np.ndarray
    metas: list[LetterboxMeta]


class ImageSource(Protocol):
    """Anything that reads an image by key as HxWx3 uint8 BGR: a COCO dataset (ids), a folder (names)."""

    def load(self, key: Any) -> np.ndarray: ...

    def path(self, key: Any) -> Path:
        """The file ``load(key)`` reads."""
        ...


def to_network(image: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxMeta]:
    """One BGR image letterboxed into ``hw`` as CHW uint8 RGB (stack with :func:`to_pixels`)."""
    boxed, meta = letterbox(image, hw)
    return boxed[:, :, ::-1].transpose(2, 0, 1), meta  # BGR->RGB, HWC->CHW


def to_pixels(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """CHW uint8 images from :func:`to_network` as the network's NCHW float32 input in [0, 1]."""
    return np.ascontiguousarray(np.stack(arrays), dtype=np.float32) / np.float32(PIXEL_MAX)


def _prepare(ds: ImageSource, image_id: Hashable, hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxMeta]:
    return to_network(ds.load(image_id), hw)


def iter_batches(ds: ImageSource, ids: Sequence[Any], hw: tuple[int, int], batch: int = 1,
                 pad_to_batch: bool = False, prefetch: bool = True) -> Iterator[Batch]:
    """Stream preprocessed batches of ``ids``.

    Args:
        ds: where the images come from (a COCO dataset, an image folder).
        ids: image keys (COCO ids, file names) in the order to feed them.
        hw: network input height, width.
        batch: images per batch.
        pad_to_batch: repeat the last image so every batch has exactly ``batch`` images
            (for models with a fixed batch dimension); ``Batch.ids`` lists only real ids.
        prefetch: decode the next batch on a worker thread while the caller runs this one.
    """
    if batch < 1:
        raise QuantsweepError(f"batch size must be at least 1 (got {batch})", "pass a positive batch size")
    chunks = [list(ids[i:i + batch]) for i in range(0, len(ids), batch)]

    def build(chunk: list[Any]) -> Batch:
        prepared = [_prepare(ds, i, hw) for i in chunk]
        arrays = [p[0] for p in prepared]
        if pad_to_batch and len(arrays) < batch:
            arrays += [arrays[-1]] * (batch - len(arrays))
        return Batch(chunk, to_pixels(arrays), [p[1] for p in prepared])

    if not prefetch or len(chunks) < 2:
        for chunk in chunks:
            yield build(chunk)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(build, chunks[0])
        for nxt in chunks[1:]:
            current = pending.result()
            pending = pool.submit(build, nxt)
            yield current
        yield pending.result()

