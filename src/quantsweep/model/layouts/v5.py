"""YOLOv5-style ``[N, A, 5+C]``: objectness times class scores, 3 anchors per cell; needs NMS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quantsweep.model.layouts.base import DetectorLayout, anchor_count, xywh2xyxy


class YoloV5(DetectorLayout):
    name = "v5"
    title = "YOLOv5 (anchor-based)"
    families = "YOLOv5 (ONNX files; quantsweep does not export it)"
    needs_nms = True

    def shape_text(self, hw: tuple[int, int] | None = None) -> str:
        return f"[N,{anchor_count(hw, 3) if hw else 'A'},5+C] (cx,cy,w,h, objectness, C class scores)"

    def match(self, dims: Sequence[int], hw: tuple[int, int]) -> int | None:
        d1, d2 = dims
        return d2 - 5 if d1 == anchor_count(hw, 3) and 6 <= d2 < d1 else None

    def candidates(self, out: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        preds = out[out[:, 4] > conf]
        cls_scores = preds[:, 5:] * preds[:, 4:5]
        anchor, cls = np.nonzero(cls_scores > conf)
        return (xywh2xyxy(preds[anchor, :4].astype(np.float32)), cls_scores[anchor, cls].astype(np.float32), cls)


LAYOUT = YoloV5()
