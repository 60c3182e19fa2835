"""Files to workers without a shared filesystem: what a step reads is found, staged, and nothing else is there."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import load_dataset
from quantsweep.sweep.shipping import Shipper, needed_files, run_staged


@pytest.fixture()
def world(tmp_path):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    entries = []
    for i in range(1, 5):
        cv2.imwrite(str(images / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
        entries.append({"id": i, "file_name": f"{i}.png", "width": 8, "height": 8})
    ann = tmp_path / "data" / "ann.json"
    ann.write_text(json.dumps({"images": entries, "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    model = tmp_path / "run" / "candidates" / "m.xml"
    model.parent.mkdir(parents=True)
    model.write_text("<net/>")
    model.with_suffix(".bin").write_bytes(b"\x00\x01")
    return load_dataset(images, ann), model, tmp_path


def _score(model: Path, ds, ids, out: Path) -> dict:
    """A step: reads the model (and its .bin) and the images of ``ids``, writes JSON next to ``out``."""
    pixels = [int(ds.load(i).mean()) for i in ids]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": str(model), "bin": model.with_suffix(".bin").read_bytes().hex(),
                               "pixels": pixels}))
    return {"model": str(model), "pixels": pixels}


def test_needed_files_are_the_model_pair_and_only_the_listed_images(world):
    ds, model, _ = world
    files = needed_files((model, ds, [2, 3], model.parent.parent / "results" / "x.json"))
    assert files == [model, model.with_suffix(".bin"), ds.path(2), ds.path(3)]
    calib = CalibSet.from_dataset(ds, 2, (8, 8))
    assert needed_files((calib,)) == [ds.path(1), ds.path(2)]


def test_a_staged_step_reads_only_what_was_shipped_and_hands_back_driver_paths(world):
    ds, model, tmp = world
    out = tmp / "run" / "results" / "m.metrics.json"
    shipper = Shipper(put=lambda data: data)  # the object store stands in as the bytes themselves
    args, refs = shipper.pack((model, ds, [2, 4], out), outputs=[out])
    assert shipper.files_out == 4 and shipper.bytes_out == sum(Path(p).stat().st_size for p in refs)
    result, back = run_staged(_score, args, refs, [str(out.parent)], get=lambda items: list(items))
    assert result == {"model": str(model), "pixels": [2, 4]}  # the staging folder is taken out
    assert list(back) == [str(out)] and not out.exists()  # the worker never wrote the driver's folder
    shipper.land(back)
    written = json.loads(out.read_text())
    assert written == {"model": str(model), "bin": "0001", "pixels": [2, 4]}
    shipper.pack((model, ds, [2, 4], out), outputs=[out])
    assert shipper.files_out == 4  # each file goes out once per run

    with pytest.raises(Exception, match=str(ds.path(3))):  # an image it was not sent is not there
        run_staged(_score, args[:2] + ([3],) + args[3:], refs, [str(out.parent)], get=lambda items: list(items))
