import json

import numpy as np
import pytest

from quantsweep.data.coco import load_dataset, load_image, select_ids
from quantsweep.data.letterbox import iter_batches, letterbox
from quantsweep.errors import QuantsweepError


@pytest.mark.parametrize("shape", [(200, 300), (421, 240), (320, 320), (100, 60), (640, 480)])
def test_letterbox_matches_ultralytics(shape):
    from quantsweep.offline import import_ultralytics

    import_ultralytics()
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    ours, meta = letterbox(img, (320, 320))
    theirs = LetterBox((320, 320), auto=False, stride=32)(image=img)
    assert ours.shape == theirs.shape == (320, 320, 3)
    assert np.array_equal(ours, theirs)
    assert meta.orig_hw == shape and meta.gain == pytest.approx(min(320 / shape[0], 320 / shape[1]))


def _write_coco(tmp_path, images=3, **overrides):
    import cv2

    (tmp_path / "img").mkdir(exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]}
    for i in range(images):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((20, 30, 3), i * 10, np.uint8))
        coco["images"].append({"id": 10 - i, "file_name": f"{i}.png", "width": 30, "height": 20})
    coco.update(overrides)
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(coco))
    return tmp_path / "img", p


def test_subset_is_first_ids_ascending_and_categories_sorted(tmp_path):
    ds = load_dataset(*_write_coco(tmp_path, 3))
    assert select_ids(ds, 2) == [8, 9]
    assert ds.category_ids == (1, 3)


def test_ids_file(tmp_path):
    ds = load_dataset(*_write_coco(tmp_path, 3))
    f = tmp_path / "ids.txt"
    f.write_text("# chosen\n10\n8\n")
    assert select_ids(ds, None, f) == [10, 8]
    f.write_text("10\n77\n")
    with pytest.raises(QuantsweepError, match="77"):
        select_ids(ds, None, f)


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    (json.dumps({"images": []}), "'annotations'"),
    (json.dumps([1, 2]), "not a COCO"),
])
def test_bad_annotations(tmp_path, content, match):
    (tmp_path / "img").mkdir()
    (tmp_path / "a.json").write_text(content)
    with pytest.raises(QuantsweepError, match=match):
        load_dataset(tmp_path / "img", tmp_path / "a.json")


def test_empty_subset(tmp_path):
    ds = load_dataset(*_write_coco(tmp_path, 0))
    with pytest.raises(QuantsweepError, match="empty"):
        select_ids(ds, 100)


def test_missing_and_corrupt_images(tmp_path):
    ds = load_dataset(*_write_coco(tmp_path, 2))
    (tmp_path / "img" / "0.png").unlink()
    with pytest.raises(QuantsweepError, match=r"0\.png.*missing"):
        load_image(ds, 10)
    (tmp_path / "img" / "1.png").write_bytes(b"garbage")
    with pytest.raises(QuantsweepError, match=r"1\.png.*cannot be decoded"):
        load_image(ds, 9)


def test_batches_stream_in_order_and_pad(tmp_path):
    ds = load_dataset(*_write_coco(tmp_path, 3))
    batches = list(iter_batches(ds, [8, 9, 10], (32, 32), batch=2, pad_to_batch=True))
    assert [b.ids for b in batches] == [[8, 9], [10]]
    assert batches[1].pixels.shape == (2, 3, 32, 32) and batches[0].pixels.dtype == np.float32
    # image i is filled with value 10*i (BGR grey), letterboxed with pad 114
    assert batches[0].pixels[0, 0, 16, 16] == pytest.approx(20 / 255)  # id 8 -> file 2.png
    assert batches[0].pixels[0, 0, 0, 0] == pytest.approx(114 / 255)


def _photo(path, value):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 60, 3), value, np.uint8))


def test_a_plain_folder_calibrates_recursively_without_labels(tmp_path):
    from quantsweep.data.calibration import CalibSet

    for i, rel in enumerate(["b.jpg", "a.PNG", "sub/c.jpeg", "sub/deeper/d.bmp"]):
        _photo(tmp_path / "photos" / rel, 10 * i)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    _photo(tmp_path / "photos" / ".hidden" / "e.jpg", 1)
    calib = CalibSet.from_folder(tmp_path / "photos", count=3, hw=(32, 32))
    assert calib.ids == ("a.PNG", "b.jpg", "sub/c.jpeg")  # sorted by relative path, first `count`
    arr = calib.array()
    assert arr.shape == (3, 3, 32, 32) and arr.dtype == np.float32
    assert calib.origin == tmp_path / "photos" and len(calib.ids_hash) == 16
    assert len(CalibSet.from_folder(tmp_path / "photos", count=99, hw=(32, 32)).ids) == 4


def test_a_plain_folder_is_checked_against_the_evaluation_subset(tmp_path):
    import shutil

    from quantsweep.data.calibration import CalibSet

    ds = load_dataset(*_write_coco(tmp_path))
    ids = select_ids(ds, 10)
    (tmp_path / "calib").mkdir()
    _photo(tmp_path / "calib" / "fresh.jpg", 7)
    assert CalibSet.from_folder(tmp_path / "calib", 8, (32, 32), ids, ds).ids == ("fresh.jpg",)
    shutil.copy(ds.path(ids[0]), tmp_path / "calib" / ds.path(ids[0]).name)  # a copied evaluation image
    with pytest.raises(QuantsweepError, match="also in the evaluation subset"):
        CalibSet.from_folder(tmp_path / "calib", 8, (32, 32), ids, ds)
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantsweepError, match="no images in"):
        CalibSet.from_folder(tmp_path / "empty", 8, (32, 32))


def test_atomic_writes_have_the_mode_of_a_plain_open(tmp_path):
    """mkstemp makes 0600 files; an atomic write must not leave the run folder unreadable to others."""
    import os
    import stat

    from quantsweep.files import atomic_replace, atomic_write_text, file_mode

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        src = tmp_path / "src.bin"
        fd = os.open(src, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        atomic_replace(src, tmp_path / "b.bin")
        assert file_mode() == 0o644
        assert {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("a.json", "b.bin")} == {0o644}
    finally:
        os.umask(old)
