"""The gallery: the images a candidate changed most, FP32 left, candidate right, ground truth outlined.

Each pair is one JPEG in ``results/gallery/`` (full size), plus a small thumbnail embedded in the
report (a data URI: the report stays one self-contained file) that links to it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.files import atomic_write_bytes

__all__ = ["caption", "thumbnail_uri", "write_gallery"]

_GT = (40, 200, 40)  # ground truth: thin green outline (BGR)


def caption(entry: dict[str, Any]) -> str:
    """One line on what changed in this image."""
    f, c = entry["fp32"], entry["candidate"]
    delta = entry["errors_delta"]
    change = (f"{'+' if delta > 0 else ''}{delta} error{'s' if abs(delta) != 1 else ''}" if delta
              else f"{entry['disagree']} box{'es' if entry['disagree'] != 1 else ''} differ")
    return (f"{entry['verdict']}: {change} — FP32 {f['correct']} correct / {f['false']} false / {f['missed']} missed; "
            f"candidate {c['correct']} / {c['false']} / {c['missed']} (of {entry['objects']} objects)")


def _panel(image: np.ndarray, truth: list[dict[str, Any]], dets: list[dict[str, Any]], title: str,
           name: Callable[[int], str]) -> np.ndarray:
    import cv2

    from quantsweep.evaluate.photos import draw

    out = image.copy()
    thick = max(1, round(sum(out.shape[:2]) / 900))
    for a in truth:
        x, y, w, h = (int(round(v)) for v in a["bbox"])
        cv2.rectangle(out, (x, y), (x + w, y + h), _GT, thick, cv2.LINE_4)
    if dets:
        boxes = np.array([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
                          for d in dets], float)
        out = draw(out, boxes, np.array([d["score"] for d in dets]), np.array([d["category_id"] for d in dets]), name)
    bar = np.full((26, out.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    return np.vstack([bar, out])


def write_gallery(folder: Path, picks: list[dict[str, Any]], image_path: Callable[[int], Path],
                  ground_truth: dict[str, Any], reference: list[dict[str, Any]], candidate: list[dict[str, Any]],
                  name: str, conf: float) -> list[dict[str, Any]]:
    """Draw each picked image's pair into ``folder/NN-<image id>.jpg``; return the picks with ``file``
    (relative to the run folder's ``results/``) set. Boxes at score >= ``conf``, labelled class + score."""
    import cv2

    from quantsweep.data.folder import read_image

    names = {int(c["id"]): str(c.get("name", c["id"])) for c in ground_truth.get("categories", [])}
    label = lambda c: names.get(int(c), str(c))  # noqa: E731
    truth: dict[int, list[dict[str, Any]]] = {}
    for a in ground_truth.get("annotations", []):
        truth.setdefault(int(a["image_id"]), []).append(a)
    by: dict[str, dict[int, list[dict[str, Any]]]] = {"fp32": {}, "candidate": {}}
    for key, dets in (("fp32", reference), ("candidate", candidate)):
        for d in dets:
            if d["score"] >= conf:
                by[key].setdefault(int(d["image_id"]), []).append(d)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jpg"):
        stale.unlink()
    out = []
    for k, entry in enumerate(picks):
        i = int(entry["image_id"])
        image = read_image(image_path(i))
        left = _panel(image, truth.get(i, []), by["fp32"].get(i, []), "FP32", label)
        right = _panel(image, truth.get(i, []), by["candidate"].get(i, []), f"{name} ({entry['verdict']})", label)
        gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
        ok, jpg = cv2.imencode(".jpg", np.hstack([left, gap, right]), [cv2.IMWRITE_JPEG_QUALITY, 88])
        if not ok:
            continue
        file = folder / f"{k + 1:02d}-{i}.jpg"
        atomic_write_bytes(file, jpg.tobytes())
        out.append({**entry, "file": f"gallery/{file.name}", "caption": caption(entry)})
    return out


def thumbnail_uri(path: Path, width: int = 420) -> str:
    """A JPEG thumbnail of ``path`` as a data URI."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        return ""
    scale = min(1.0, width / image.shape[1])
    small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return f"data:image/jpeg;base64,{base64.b64encode(jpg.tobytes()).decode()}" if ok else ""
