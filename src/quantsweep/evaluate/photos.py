"""Run any model quantsweep makes on real photos: boxes drawn on the images, detections as COCO JSON.

``quantsweep predict`` is a thin shell over :class:`Detector`. The preprocessing (letterbox) and
decoding (the model's output layout) are the ones evaluation uses, so a box here is the box that
was scored. :func:`snippet` writes the same steps as a short Python program that needs only the
runtime, OpenCV and numpy (the run's ``recommended/README.md`` quotes it; a test checks that it
gives the numbers ``predict`` gives).

Example:
    >>> det = Detector(Path("recommended/int8-ov.xml"))  # doctest: +SKIP
    >>> boxes, scores, classes = det(cv2.imread("street.jpg"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.data.folder import IMAGE_SUFFIXES, read_image
from quantsweep.data.letterbox import to_network, to_pixels
from quantsweep.errors import QuantsweepError
from quantsweep.evaluate.decode import decode
from quantsweep.files import atomic_write_bytes, atomic_write_json
from quantsweep.model.formats import inspect_model
from quantsweep.model.layouts import DetectorLayout, detect_layout

__all__ = ["Detector", "find_images", "predict_photos", "snippet"]


def _names(model: Path) -> dict[int, str]:
    """Class names from the model's metadata (Ultralytics writes ``names`` into the ONNX), else {}."""
    from quantsweep.model.formats import format_of

    return format_of(model).class_names(model)


class Detector:
    """One model opened on one runtime, turning BGR images into boxes in the images' own pixels.

    Args:
        model: an ONNX file or an OpenVINO IR (``.xml`` with its ``.bin``).
        provider: ``auto`` (OpenVINO for an IR, ONNX Runtime CPU for ONNX), or a provider name
            as ``quantsweep eval --provider`` takes it.
        conf, iou, max_det: the decoding's score threshold, NMS IoU and cap per image.
    """

    def __init__(self, model: Path, provider: str = "auto", conf: float = 0.25, iou: float = 0.7,
                 max_det: int = 300, imgsz: int | None = None) -> None:
        from quantsweep.runtimes import open_session, runtime_for

        self.model = Path(model)
        info = inspect_model(self.model, imgsz)
        hw = info.hw or ((imgsz, imgsz) if imgsz else None)
        if hw is None:
            raise QuantsweepError(f"{model} has a dynamic input size", "pass --imgsz")
        self.hw: tuple[int, int] = hw
        self.provider = runtime_for(self.model, "cpu").provider if provider == "auto" else provider
        self.session = open_session(self.model, self.provider)
        self.layout: DetectorLayout | None = info.layout
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.names = _names(self.model)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(xyxy boxes in image pixels, scores, class indices)`` of one HxWx3 uint8 BGR image."""
        chw, meta = to_network(image, self.hw)
        out = self.session.run(to_pixels([chw]))
        if self.layout is None:
            self.layout = detect_layout(out.shape, self.hw, source=str(self.model))[0]
        [(boxes, scores, classes)] = decode(out, self.layout, [meta], self.conf, self.iou, self.max_det)
        return boxes, scores, classes

    def name(self, cls: int) -> str:
        return self.names.get(int(cls), f"class {int(cls)}")


def find_images(paths: Sequence[Path]) -> list[Path]:
    """Image files among ``paths`` (folders searched recursively), in a stable order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise QuantsweepError(f"image path not found: {p}", "pass image files or folders with --images")
    if not found:
        raise QuantsweepError(f"no images in {', '.join(map(str, paths))}",
                              f"pass files or folders of {', '.join(sorted(IMAGE_SUFFIXES))}")
    return found


def _colour(cls: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class."""
    hue = (int(cls) * 0.618034) % 1.0
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(255 * b), int(255 * g), int(255 * r)


def draw(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
         name: Any = str) -> np.ndarray:
    """``image`` (BGR) with each box outlined and labelled ``name(class) score``."""
    import cv2

    out = image.copy()
    thick = max(1, round(sum(out.shape[:2]) / 600))
    for (x1, y1, x2, y2), s, c in zip(boxes.round().astype(int), scores, classes):
        colour = _colour(int(c))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        label = f"{name(int(c))} {s:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, 1)
        top = max(y1 - th - 4, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + 4), colour, -1)
        cv2.putText(out, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def predict_photos(detector: Detector, images: Sequence[Path], out: Path) -> dict[str, Any]:
    """Run ``detector`` on ``images``; write ``out/<stem>.jpg`` (boxes drawn) and ``out/detections.json``.

    ``detections.json`` holds ``images`` (id, file, width, height), ``categories`` (class index ->
    name) and ``detections`` in COCO's result format (``bbox`` = x, y, w, h in the original image's
    pixels; ``category_id`` = the class index), plus the settings.
    """
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    used: set[str] = set()
    for image_id, path in enumerate(images, start=1):
        img = read_image(path)
        boxes, scores, classes = detector(img)
        stem = path.stem if path.stem not in used else f"{path.stem}-{image_id}"
        used.add(stem)
        ok, jpg = cv2.imencode(".jpg", draw(img, boxes, scores, classes, detector.name), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise QuantsweepError(f"cannot encode the drawing of {path}", "check the image")
        atomic_write_bytes(out / f"{stem}.jpg", jpg.tobytes())
        listed.append({"id": image_id, "file": str(path), "drawn": f"{stem}.jpg", "width": int(img.shape[1]),
                       "height": int(img.shape[0])})
        records += [{"image_id": image_id, "category_id": int(c), "name": detector.name(int(c)),
                     "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2),
                              round(float(b[3] - b[1]), 2)], "score": round(float(s), 5)}
                    for b, s, c in zip(boxes, scores, classes)]
    result = {"model": str(detector.model), "runtime": detector.session.provider, "layout": str(detector.layout),
              "input_hw": list(detector.hw), "settings": {"conf": detector.conf, "iou": detector.iou,
                                                           "max_det": detector.max_det},
              "images": listed, "categories": [{"id": int(k), "name": v} for k, v in sorted(detector.names.items())],
              "detections": records}
    atomic_write_json(out / "detections.json", result)
    return result


def snippet(model: Path, image: Path, layout: str, hw: tuple[int, int], conf: float = 0.25,
            provider: str = "auto") -> str:
    """A copy-pasteable Python program: open ``model`` on its runtime, letterbox ``image``, decode boxes.

    Needs only the runtime, OpenCV and numpy (plus quantsweep's layout decoding for raw heads'
    NMS, imported from the installed package). The numbers are those of ``quantsweep predict``
    with the same ``provider`` (``auto``: the first runtime that opens the model's format).
    """
    from quantsweep.runtimes import runtime_for

    opened = runtime_for(Path(model), "cpu" if provider == "auto" else provider).open_code(str(model))
    return f'''import cv2
import numpy as np
from quantsweep.model.layouts import get_layout
{opened}

image = cv2.imread("{image}")  # BGR
h, w = image.shape[:2]
gain = min({hw[0]} / h, {hw[1]} / w)  # letterbox to {hw[0]}x{hw[1]}: scale to fit, pad with 114, centred
nw, nh = max(round(w * gain), 1), max(round(h * gain), 1)
left, top = round(({hw[1]} - nw) / 2 - 0.1), round(({hw[0]} - nh) / 2 - 0.1)
boxed = cv2.copyMakeBorder(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image,
                           top, {hw[0]} - nh - top, left, {hw[1]} - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
x = np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0  # RGB, NCHW, [0, 1]
boxes, scores, classes = get_layout("{layout}").decode_one(run(x)[0], conf={conf}, iou=0.7, max_det=300)
boxes = ((boxes - [left, top, left, top]) / gain).clip(0, [w, h, w, h])  # x1, y1, x2, y2 in the image's pixels
for b, s, c in zip(boxes, scores, classes):
    print(int(c), round(float(s), 3), [round(float(v), 1) for v in b])
'''


def write_summary(result: dict[str, Any]) -> str:
    """One line per image for the terminal."""
    per: dict[int, int] = {}
    for d in result["detections"]:
        per[d["image_id"]] = per.get(d["image_id"], 0) + 1
    return "\n".join(f"{im['file']}: {per.get(im['id'], 0)} boxes -> {im['drawn']}" for im in result["images"])
