"""Deterministic synthetic COCO-format detection data: the demo world's images.

Every image is a pure function of ``(seed, split, index)``: the same call writes the same
pixels and the same annotations on any machine with the same OpenCV, so the dataset never has
to be shipped. Images have varied sizes and aspect ratios (so letterbox mapping is exercised),
textured backgrounds, five shape classes at sizes from ~14 px to ~80 % of the image, random
colours, and occlusion: objects drawn later cover earlier ones, and an object whose visible
area falls under 50 % of its own is dropped from the labels (and kept as clutter in the image).

Example:
    >>> from quantsweep.demo.synth import write_split
    >>> write_split(Path("demo/val"), "val", 120)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "SPLITS", "SyntheticImage", "make_image", "write_split"]

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# split -> default image count; calib is disjoint from val because the split name is hashed
# into every image's seed and ids are offset per split.
# val: 100 search + 400 confirmation images (the paired interval narrows as 1/sqrt(N): ~±1 point at
# 100 images on the demo, ~±0.5 at 400)
SPLITS: dict[str, int] = {"train": 640, "val": 500, "calib": 64}
_ID_OFFSET: dict[str, int] = {"train": 1, "val": 100_001, "calib": 200_001}
_MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image and its labels (boxes are x, y, w, h in pixels)."""

    pixels: np.ndarray  # HxWx3 uint8, BGR (OpenCV order)
    boxes: list[tuple[float, float, float, float]]
    classes: list[int]
    areas: list[float]


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    key = zlib.crc32(f"{seed}:{split}:{index}".encode())
    return np.random.default_rng(key)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    kind = rng.integers(0, 5)
    base = rng.integers(0, 256, size=3)
    if kind == 0:  # linear gradient between two colours
        other = rng.integers(0, 256, size=3)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        line = base[None, :] * (1 - t[:, None]) + other[None, :] * t[:, None]
        img = np.broadcast_to(line[None] if len(t) == w else line[:, None], (h, w, 3))
    elif kind == 1:  # smooth noise blobs
        small = rng.integers(0, 256, size=(max(2, h // 32), max(2, w // 32), 3)).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # stripes
        period = int(rng.integers(6, 40))
        other = rng.integers(0, 256, size=3)
        yy, xx = np.mgrid[0:h, 0:w]
        angle = rng.uniform(0, np.pi)
        phase = ((xx * np.cos(angle) + yy * np.sin(angle)) // period).astype(int) % 2
        img = np.where(phase[..., None] == 0, base, other)
    elif kind == 3:  # checkerboard
        cell = int(rng.integers(8, 48))
        other = rng.integers(0, 256, size=3)
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.where((((yy // cell) + (xx // cell)) % 2)[..., None] == 0, base, other)
    else:  # flat colour
        img = np.broadcast_to(base, (h, w, 3))
    img = np.asarray(img, dtype=np.float32)
    img = img + rng.normal(0, rng.uniform(2, 8), size=img.shape)  # sensor-like noise
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_points(cls: int, cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    if cls == 1:  # square
        ang = rot + np.pi / 4 + np.arange(4) * np.pi / 2
        radii = np.full(4, r)
    elif cls == 2:  # triangle
        ang = rot + np.arange(3) * 2 * np.pi / 3
        radii = np.full(3, r)
    elif cls == 3:  # five-pointed star
        ang = rot + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    else:  # cross (plus sign): 12-gon
        a, b = r, r * 0.35
        pts = np.array([(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b),
                        (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)])
        c, s = np.cos(rot), np.sin(rot)
        rotated = pts @ np.array([[c, s], [-s, c]])
        return (rotated + [cx, cy]).astype(np.int32)
    return np.stack([cx + radii * np.cos(ang), cy + radii * np.sin(ang)], 1).astype(np.int32)


def _draw(mask_or_img: np.ndarray, cls: int, cx: float, cy: float, r: float, rot: float,
          color: tuple[int, ...]) -> None:
    import cv2

    if cls == 0:
        cv2.circle(mask_or_img, (int(cx), int(cy)), int(r), color, -1, cv2.LINE_AA)
    else:
        cv2.fillPoly(mask_or_img, [_shape_points(cls, cx, cy, r, rot)], color, cv2.LINE_AA)


def make_image(seed: int, split: str, index: int) -> SyntheticImage:
    """Generate image ``index`` of ``split`` (pure: same arguments, same result)."""
    import cv2

    rng = _rng(seed, split, index)
    w, h = int(rng.integers(240, 481)), int(rng.integers(200, 421))
    img = _background(rng, h, w).copy()
    n = int(rng.integers(1, 7))
    owner = np.full((h, w), -1, dtype=np.int16)  # index of the object visible at each pixel
    objects: list[tuple[int, np.ndarray]] = []
    for _ in range(n):
        cls = int(rng.integers(0, len(CLASSES)))
        # log-uniform size: many small objects, some large ones
        r = float(np.exp(rng.uniform(np.log(7), np.log(0.4 * min(w, h)))))
        rot = float(rng.uniform(0, 2 * np.pi))
        full = None
        for _try in range(8):  # partial occlusion only: never hide half of an earlier object
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            mask = np.zeros((h, w), dtype=np.uint8)
            _draw(mask, cls, cx, cy, r, rot, (255,))
            cand = mask > 127
            if cand.sum() >= 12 and all(
                    (owner[m] == k).sum() - (cand & (owner == k)).sum() >= _MIN_VISIBLE * m.sum()
                    for k, (_, m) in enumerate(objects)):
                full = cand
                break
        if full is None:
            continue
        # a colour that stands out from the background under the shape
        under = img[full].reshape(-1, 3).mean(axis=0)
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        for _try in range(10):
            if np.abs(np.asarray(color) - under).sum() >= 150:
                break
            color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        _draw(img, cls, cx, cy, r, rot, color)
        if rng.random() < 0.3:  # a darker outline on some objects
            outline = tuple(max(0, c - 90) for c in color)
            edge = full.astype(np.uint8)
            contours, _ = cv2.findContours(edge, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, contours, -1, outline, 1, cv2.LINE_AA)
        owner[full] = len(objects)
        objects.append((cls, full))
    boxes, classes, areas = [], [], []
    for k, (cls, full) in enumerate(objects):
        visible = owner == k
        vis_area = float(visible.sum())
        if vis_area < _MIN_VISIBLE * float(full.sum()) or vis_area < 10:
            continue
        ys, xs = np.nonzero(visible)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        boxes.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
        classes.append(cls)
        areas.append(vis_area)
    return SyntheticImage(pixels=img, boxes=boxes, classes=classes, areas=areas)


def write_split(out: Path, split: str, count: int | None = None, seed: int = 0,
                yolo_labels: bool = False) -> Path:
    """Write ``count`` images of ``split`` to ``out/images`` and ``out/annotations.json``.

    Args:
        out: split folder to create.
        split: one of :data:`SPLITS`.
        count: number of images (default: the split's size in :data:`SPLITS`).
        seed: dataset seed; the demo world uses 0.
        yolo_labels: also write ``out/labels/*.txt`` (normalized cx cy w h) for training.

    Returns:
        The annotations file path.
    """
    import cv2

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    count = SPLITS[split] if count is None else count
    (out / "images").mkdir(parents=True, exist_ok=True)
    if yolo_labels:
        (out / "labels").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for i in range(count):
        image_id = _ID_OFFSET[split] + i
        sample = make_image(seed, split, i)
        name = f"{split}_{image_id:06d}.jpg"
        cv2.imwrite(str(out / "images" / name), sample.pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])
        h, w = sample.pixels.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        lines = []
        for box, cls, area in zip(sample.boxes, sample.classes, sample.areas):
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": cls + 1,
                                "bbox": [round(v, 2) for v in box], "area": area, "iscrowd": 0})
            ann_id += 1
            x, y, bw, bh = box
            lines.append(f"{cls} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} "
                         f"{bw / w:.6f} {bh / h:.6f}")
        if yolo_labels:
            (out / "labels" / name.replace(".jpg", ".txt")).write_text("\n".join(lines) + "\n")
    coco = {
        "info": {"description": f"quantsweep synthetic demo, split {split}, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"}
                       for i, n in enumerate(CLASSES)],
    }
    ann_path = out / "annotations.json"
    ann_path.write_text(json.dumps(coco))
    return ann_path
