"""COCO-format datasets, the fixed evaluation subset, and the one preprocessing.

Calibration and evaluation both go through :func:`iter_batches`, so a quantized model is
calibrated on exactly the tensors it is later evaluated with. Preprocessing is Ultralytics'
predictor letterbox: scale to fit (up or down), INTER_LINEAR, centred, pad value 114,
BGR->RGB, /255, NCHW float32. Images are streamed one batch at a time (bounded memory).

Example:
    >>> ds = load_dataset(Path("demo/val/images"), Path("demo/val/annotations.json"))  # doctest: +SKIP
    >>> ids = select_ids(ds, max_images=100)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.errors import QuantsweepError

__all__ = [
    "Batch",
    "Dataset",
    "LetterboxMeta",
    "coco2017_paths",
    "iter_batches",
    "letterbox",
    "load_dataset",
    "load_image",
    "read_ids_file",
    "select_ids",
    "write_ids_file",
]

PAD_VALUE = 114


@dataclass(frozen=True)
class Dataset:
    """A COCO instances dataset: an images folder and its annotations JSON.

    ``category_ids`` is sorted ascending: model class index ``i`` maps to ``category_ids[i]``
    (for COCO's 80 classes this is exactly the 91-id numbering; custom datasets map in order).
    """

    images_dir: Path
    annotations: Path
    coco: dict[str, Any] = field(repr=False)
    images: dict[int, dict[str, Any]] = field(repr=False)
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)


def coco2017_paths(root: Path, split: str = "val2017") -> tuple[Path, Path]:
    """``ROOT/<split>/`` and ``ROOT/annotations/instances_<split>.json`` of the COCO 2017 layout."""
    return root / split, root / "annotations" / f"instances_{split}.json"


def load_dataset(images_dir: Path, annotations: Path) -> Dataset:
    """Read and validate a COCO instances JSON and its images folder.

    Raises:
        QuantsweepError: missing folder/file, malformed JSON, or missing required keys.
    """
    images_dir, annotations = Path(images_dir), Path(annotations)
    if not images_dir.is_dir():
        raise QuantsweepError(f"images folder not found: {images_dir}",
                              "pass --images with the folder that holds the dataset's images")
    if not annotations.is_file():
        raise QuantsweepError(f"annotations file not found: {annotations}",
                              "pass --annotations with a COCO instances JSON file")
    try:
        coco = json.loads(annotations.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuantsweepError(f"annotations file {annotations} is not valid JSON ({exc})",
                              "fix or regenerate the file") from None
    if not isinstance(coco, dict):
        raise QuantsweepError(f"annotations file {annotations} is not a COCO instances object",
                              "expected a JSON object with images, annotations and categories")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(coco.get(k), list)]
    if missing:
        raise QuantsweepError(
            f"annotations file {annotations} has no {', '.join(repr(k) for k in missing)} list",
            "expected COCO instances format: images, annotations and categories")
    try:
        images = {int(im["id"]): im for im in coco["images"]}
        cats = sorted(coco["categories"], key=lambda c: int(c["id"]))
        category_ids = tuple(int(c["id"]) for c in cats)
        names = tuple(str(c.get("name", c["id"])) for c in cats)
        for im in images.values():
            im["file_name"]  # noqa: B018 - presence check
    except (KeyError, TypeError, ValueError) as exc:
        raise QuantsweepError(f"annotations file {annotations} has a malformed record ({exc!r})",
                              "every image needs id and file_name, every category an id") from None
    if not category_ids:
        raise QuantsweepError(f"annotations file {annotations} lists no categories",
                              "add the dataset's categories")
    return Dataset(images_dir, annotations, coco, images, category_ids, names)


def read_ids_file(path: Path) -> list[int]:
    """Read image ids, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise QuantsweepError(f"image-ids file not found: {path}", "pass a text file with one id per line")
    ids = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            ids.append(int(line))
        except ValueError:
            raise QuantsweepError(f"{path}:{n}: {line!r} is not an integer image id",
                                  "write one integer id per line") from None
    return ids


def write_ids_file(path: Path, ids: Sequence[int]) -> None:
    """Write ids one per line (the format :func:`read_ids_file` reads)."""
    Path(path).write_text("".join(f"{i}\n" for i in ids))


def select_ids(ds: Dataset, max_images: int | None = 100, ids_file: Path | None = None) -> list[int]:
    """The evaluation subset: the ids listed in ``ids_file``, else the first ``max_images`` ids.

    Raises:
        QuantsweepError: unknown ids in the file, or an empty subset.
    """
    if ids_file is not None:
        ids = read_ids_file(ids_file)
        unknown = [i for i in ids if i not in ds.images]
        if unknown:
            shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
            raise QuantsweepError(
                f"{len(unknown)} id(s) in {ids_file} are not in {ds.annotations}: {shown}",
                "list only image ids present in the annotations file")
        if max_images is not None:
            ids = ids[:max_images]
    else:
        if max_images is not None and max_images < 1:
            raise QuantsweepError(f"--max-images must be at least 1 (got {max_images})",
                                  "pass a positive count")
        ids = sorted(ds.images)[:max_images]
    if not ids:
        raise QuantsweepError(f"the evaluation subset of {ds.annotations} is empty",
                              "use a dataset with images, or a non-empty --image-ids file")
    return ids


def load_image(ds: Dataset, image_id: int) -> np.ndarray:
    """Read one image as HxWx3 uint8 BGR.

    Raises:
        QuantsweepError: the file is missing or cannot be decoded.
    """
    import cv2

    path = ds.images_dir / ds.images[image_id]["file_name"]
    if not path.is_file():
        raise QuantsweepError(f"image {path} (id {image_id}) is listed in {ds.annotations} but missing",
                              "restore the file or remove it from the annotations/subset")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise QuantsweepError(f"image {path} (id {image_id}) cannot be decoded (corrupt or not an image)",
                              "replace the file or remove it from the annotations/subset")
    return img


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

    ids: list[int]
    pixels: np.ndarray
    metas: list[LetterboxMeta]


def _prepare(ds: Dataset, image_id: int, hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxMeta]:
    boxed, meta = letterbox(load_image(ds, image_id), hw)
    return boxed[:, :, ::-1].transpose(2, 0, 1), meta  # BGR->RGB, HWC->CHW


def iter_batches(ds: Dataset, ids: Sequence[int], hw: tuple[int, int], batch: int = 1,
                 pad_to_batch: bool = False, prefetch: bool = True) -> Iterator[Batch]:
    """Stream preprocessed batches of ``ids``.

    Args:
        ds: the dataset.
        ids: image ids in the order to feed them.
        hw: network input height, width.
        batch: images per batch.
        pad_to_batch: repeat the last image so every batch has exactly ``batch`` images
            (for models with a fixed batch dimension); ``Batch.ids`` lists only real ids.
        prefetch: decode the next batch on a worker thread while the caller runs this one.
    """
    if batch < 1:
        raise QuantsweepError(f"--batch must be at least 1 (got {batch})", "pass a positive batch size")
    chunks = [list(ids[i:i + batch]) for i in range(0, len(ids), batch)]

    def build(chunk: list[int]) -> Batch:
        prepared = [_prepare(ds, i, hw) for i in chunk]
        arrays = [p[0] for p in prepared]
        if pad_to_batch and len(arrays) < batch:
            arrays += [arrays[-1]] * (batch - len(arrays))
        pixels = np.ascontiguousarray(np.stack(arrays), dtype=np.float32) / np.float32(255.0)
        return Batch(chunk, pixels, [p[1] for p in prepared])

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
