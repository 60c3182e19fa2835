import numpy as np
import pytest

from quantsweep.data.letterbox import LetterboxMeta
from quantsweep.errors import QuantsweepError
from quantsweep.evaluate.decode import decode, to_coco
from quantsweep.model.layouts import LAYOUTS, anchor_count, detect_layout, get_layout, supported_table, supported_text

HW = (320, 320)
A = anchor_count(HW)  # 40*40 + 20*20 + 10*10 = 2100


def test_anchor_count():
    assert A == 2100 and anchor_count((640, 640)) == 8400 and anchor_count((640, 640), 3) == 25200


@pytest.mark.parametrize("shape, layout, nc", [
    ([1, 300, 6], "e2e", 0),
    (["batch", 100, 6], "e2e", 0),
    ([1, 84, 2100], "raw", 80),
    ([1, 6, 2100], "raw", 2),
    ([4, 6300, 85], "v5", 80),
    ([1, 6300, 6], "v5", 1),  # one-class v5 is not mistaken for e2e
])
def test_detect_layout(shape, layout, nc):
    assert detect_layout(shape, HW) == (layout, nc)


@pytest.mark.parametrize("shape", [[1, 1000], [1, 84, 8400], [1, 7, 7], [1, 300, 7], [1, 2100, 84, 1],
                                   [1, 2100, 6]])  # a 2-class raw head transposed: not end-to-end
def test_unknown_layout_names_the_shape(shape):
    with pytest.raises(QuantsweepError, match=r"unknown output layout \[" + str(shape[0])):
        detect_layout(shape, HW, source="m.onnx")


@pytest.mark.parametrize("hw", [(320, 320), (640, 640), (256, 416), (96, 96)])
def test_no_output_shape_is_claimed_by_two_layouts(hw):
    """Every shape any registered layout claims (class counts 1..100, K up to 1000) is claimed by it alone."""
    a1, a3 = anchor_count(hw), anchor_count(hw, 3)
    shapes = {(d1, d2) for c in range(1, 101) for d1, d2 in ((4 + c, a1), (a3, 5 + c), (a1, 4 + c), (5 + c, a3))}
    shapes |= {(k, 6) for k in range(1, 1001)} | {(6, k) for k in range(1, 1001)}
    claimed = 0
    for dims in shapes:
        owners = [name for name, lay in LAYOUTS.items() if lay.match(dims, hw) is not None]
        assert len(owners) <= 1, (dims, owners)
        claimed += bool(owners)
    assert claimed > 300  # the loop checked real claims, not only unclaimed shapes


def test_supported_layouts_are_listed_once_from_the_registry():
    from pathlib import Path

    text = supported_text()
    assert all(lay.title in text for lay in LAYOUTS.values())
    docs = (Path(__file__).parents[2] / "docs" / "usage.md").read_text()
    assert supported_table() in docs, "docs/usage.md: paste quantsweep.model.layouts.supported_table()"


META = LetterboxMeta(orig_hw=(160, 320), gain=1.0, pad_left=0, pad_top=80)  # 320x160 image at 320


def test_decode_e2e_maps_back_and_filters():
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [10, 90, 50, 130, 0.9, 2]
    out[0, 1] = [0, 0, 5, 5, 0.0005, 1]  # below conf
    [(boxes, scores, cls)] = decode(out, get_layout("e2e"), [META], conf=0.001)
    assert boxes.tolist() == [[10, 10, 50, 50]] and cls.tolist() == [2]
    assert scores.tolist() == pytest.approx([0.9])


def test_decode_raw_nms_multilabel_and_clip():
    nc = 3
    out = np.zeros((1, 4 + nc, A), np.float32)
    out[0, :4, 0] = [30, 110, 40, 40]  # box around (30, 30) in the original image
    out[0, 4:, 0] = [0.8, 0.0, 0.6]  # two labels on one box (multi-label)
    out[0, :4, 1] = [31, 111, 40, 40]  # near-duplicate of class 0: suppressed by NMS
    out[0, 4:, 1] = [0.7, 0.0, 0.0]
    out[0, :4, 2] = [315, 150, 20, 20]  # crosses the right edge: clipped
    out[0, 4:, 2] = [0.0, 0.5, 0.0]
    [(boxes, scores, cls)] = decode(out, get_layout("raw"), [META], conf=0.25, iou=0.7)
    got = sorted(zip(cls.tolist(), scores.tolist(), boxes.round(1).tolist()))
    assert [(c, b) for c, _, b in got] == [(0, [10, 10, 50, 50]), (1, [305, 60, 320, 80]), (2, [10, 10, 50, 50])]
    assert [s for _, s, _ in got] == pytest.approx([0.8, 0.5, 0.6])


def test_decode_v5_uses_objectness():
    nc = 2
    out = np.zeros((1, anchor_count(HW, 3), 5 + nc), np.float32)
    out[0, 5] = [30, 110, 40, 40, 0.5, 0.9, 0.1]  # conf = obj * cls = 0.45 / 0.05
    out[0, 6] = [100, 100, 10, 10, 0.0001, 1.0, 1.0]  # objectness below conf
    [(boxes, scores, cls)] = decode(out, get_layout("v5"), [META], conf=0.01)
    assert cls.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.45, 0.05])
    assert boxes[0].tolist() == [10, 10, 50, 50]


def test_decode_max_det_and_padded_rows():
    out = np.zeros((2, 300, 6), np.float32)
    out[:, :, 4] = 0.5
    out[:, :, 2:4] = 10
    results = decode(out, get_layout("e2e"), [META], max_det=7)  # second row is padding
    assert len(results) == 1 and len(results[0][0]) == 7


def test_to_coco_maps_categories_and_checks_range():
    recs = to_coco(5, np.array([[1.0, 2.0, 11.0, 22.0]]), np.array([0.5]), np.array([1]), (1, 3))
    assert recs == [{"image_id": 5, "category_id": 3, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.5}]
    with pytest.raises(QuantsweepError, match="class 2"):
        to_coco(5, np.zeros((1, 4)), np.array([0.5]), np.array([2]), (1, 3))


@pytest.mark.parametrize("seed", range(6))
def test_nms_keeps_exactly_what_torchvision_keeps(seed):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from quantsweep.evaluate.decode import nms

    rng = np.random.default_rng(seed)
    n = 400
    xy = rng.uniform(0, 300, size=(n, 2)).astype(np.float32)
    wh = rng.uniform(2, 80, size=(n, 2)).astype(np.float32)
    if seed % 2:  # quantized heads: clustered boxes and few distinct scores, so many exact ties
        xy, wh = np.round(xy / 16) * 16, np.round(wh / 8) * 8 + 8
        scores = rng.integers(0, 12, size=n).astype(np.float32) / 12
    else:
        scores = rng.random(n, dtype=np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    for iou in (0.45, 0.7):
        theirs = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        assert np.array_equal(nms(boxes, scores, iou), theirs), (seed, iou)
