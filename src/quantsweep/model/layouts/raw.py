"""Raw one-to-many ``[N, 4+C, A]``: YOLOv8/v9/v10/11/YOLO26 without the end-to-end branch; needs NMS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quantsweep.model.layouts.base import DetectorLayout, anchor_count, xywh2xyxy


class Raw(DetectorLayout):
    name = "raw"
    title = "raw (one-to-many)"
    families = "YOLOv8, YOLO11, YOLOv10 and YOLO26 exported with end2end=False"
    needs_nms = True
    export_end2end = False

    def shape_text(self, hw: tuple[int, int] | None = None) -> str:
        return f"[N,4+C,{anchor_count(hw) if hw else 'A'}] (cx,cy,w,h, C class scores; A anchors over strides 8/16/32)"

    def match(self, dims: Sequence[int], hw: tuple[int, int]) -> int | None:
        d1, d2 = dims
        return d1 - 4 if d2 == anchor_count(hw) and 5 <= d1 < d2 else None

    def candidates(self, out: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        preds = out.T  # [A, 4+C]
        cls_scores = preds[:, 4:]
        anchor, cls = np.nonzero(cls_scores > conf)  # multi-label: one box may score several classes
        return (xywh2xyxy(preds[anchor, :4].astype(np.float32)), cls_scores[anchor, cls].astype(np.float32), cls)


LAYOUT = Raw()
