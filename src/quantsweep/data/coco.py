"""COCO-format datasets: loading and checking an instances JSON, image ids files, the fixed
evaluation subset, and reading one image.

Example:
    >>> ds = load_dataset(Path("demo/val/images"), Path("demo/val/annotations.json"))  # doctest: +SKIP
    >>> ids = select_ids(ds, max_images=100)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.data.folder import read_image
from quantsweep.errors import QuantsweepError

__all__ = ["Dataset", "coco2017_paths", "load_dataset", "load_image", "read_ids_file", "select_ids", "write_ids_file"]


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

    def path(self, image_id: int) -> Path:
        """The file of image ``image_id``."""
        return self.images_dir / self.images[image_id]["file_name"]

    def load(self, image_id: int) -> np.ndarray:
        """Image ``image_id`` as HxWx3 uint8 BGR (see :func:`load_image`)."""
        return load_image(self, image_id)


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
            raise QuantsweepError(f"max_images must be at least 1 (got {max_images})", "use a positive count",
                                  "max_images")
        ids = sorted(ds.images)[:max_images]
    if not ids:
        raise QuantsweepError(f"the evaluation subset of {ds.annotations} is empty",
                              "use a dataset with images, or a non-empty --image-ids file")
    return ids


def load_image(ds: Dataset, image_id: int) -> np.ndarray:
    """Read one image of ``ds`` as HxWx3 uint8 BGR.

    Raises:
        QuantsweepError: the file is missing or cannot be decoded.
    """
    path = ds.path(image_id)
    if not path.is_file():
        raise QuantsweepError(f"image {path} (id {image_id}) is listed in {ds.annotations} but missing",
                              "restore the file or remove it from the annotations/subset")
    try:
        return read_image(path)
    except QuantsweepError:
        raise QuantsweepError(f"image {path} (id {image_id}) cannot be decoded (corrupt or not an image)",
                              "replace the file or remove it from the annotations/subset") from None
