"""A plain folder of images (searched recursively): what calibration needs, no labels required.

Example:
    >>> folder = ImageFolder.scan(Path("/datasets/coco/train2017"))  # doctest: +SKIP
    >>> folder.keys[:2], folder.load(folder.keys[0]).shape  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantsweep.errors import QuantsweepError

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "read_image"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def read_image(path: Path, listed_in: Path | None = None) -> np.ndarray:
    """Read one image file as HxWx3 uint8 BGR.

    Raises:
        QuantsweepError: the file is missing or cannot be decoded (naming ``listed_in`` if given).
    """
    import cv2

    where = f" is listed in {listed_in} but" if listed_in else ""
    if not path.is_file():
        raise QuantsweepError(f"image {path}{where} is missing", "restore the file or remove it from the list")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise QuantsweepError(f"image {path} cannot be decoded (corrupt or not an image)",
                              "replace the file or remove it")
    return img


@dataclass(frozen=True)
class ImageFolder:
    """The images under ``root``: keys are their paths relative to ``root``, sorted."""

    root: Path
    keys: tuple[str, ...]

    @classmethod
    def scan(cls, root: Path) -> ImageFolder:
        """Every file under ``root`` with an image suffix (case-insensitive), hidden ones skipped.

        Raises:
            QuantsweepError: the folder does not exist or holds no image.
        """
        root = Path(root)
        if not root.is_dir():
            raise QuantsweepError(f"calibration folder not found: {root}", "pass a folder of images")
        keys = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                      if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not keys:
            raise QuantsweepError(f"no images in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)",
                                  "pass a folder that holds calibration images")
        return cls(root, tuple(keys))

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> np.ndarray:
        return read_image(self.root / key)
