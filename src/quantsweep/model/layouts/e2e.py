"""End-to-end ``[N, K, 6]``: NMS-free heads (YOLOv10 and YOLO26 one-to-one) or exports with NMS inside."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quantsweep.model.layouts.base import DetectorLayout, anchor_count


class EndToEnd(DetectorLayout):
    name = "e2e"
    title = "end-to-end"
    families = "YOLOv10, YOLO26 (one-to-one head); any export with NMS inside"
    needs_nms = False
    export_end2end = True

    def shape_text(self, hw: tuple[int, int] | None = None) -> str:
        return "[N,K,6] (x1,y1,x2,y2,score,class)"

    def match(self, dims: Sequence[int], hw: tuple[int, int]) -> int | None:
        d1, d2 = dims
        # K rows of 6: never an anchor count (a 1- or 2-class head transposed would be that)
        return 0 if d2 == 6 and d1 not in (anchor_count(hw), anchor_count(hw, 3)) else None

    def candidates(self, out: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = out[out[:, 4] > conf]
        return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)


LAYOUT = EndToEnd()
