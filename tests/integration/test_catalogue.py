"""The bad-input catalogue, case by case: one clear line, exit code 2, no traceback, nothing lost.

Every case of :data:`quantsweep.troubleshooting.CASES` has a trigger here; docs/troubleshooting.md's table is
generated from the same list.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from tests.conftest import write_constant_detector, write_external_data_detector

from quantsweep.cli.main import main
from quantsweep.sweep.config import SweepConfig
from quantsweep.troubleshooting import CASES, markdown_table


def _data(d):
    return ["--images", d / "val" / "images", "--annotations", d / "val" / "annotations.json"]


def _eval(d, model, tmp, *extra, data=None):
    return ["eval", "--model", model, *(data or _data(d)), "--out", tmp / "m.json", *extra]


def _split_copy(d, tmp, n=3):
    coco = json.loads((d / "val" / "annotations.json").read_text())
    coco["images"] = coco["images"][:n]
    keep = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (tmp / "images").mkdir()
    for im in coco["images"]:
        shutil.copy(d / "val" / "images" / im["file_name"], tmp / "images")
    (tmp / "ann.json").write_text(json.dumps(coco))
    return coco, ["--images", tmp / "images", "--annotations", tmp / "ann.json"]


def _external(tmp, loc):
    (tmp / "models").mkdir()
    return write_external_data_detector(tmp / "models" / "m.onnx", loc)


def _bad_pt(tmp, payload):
    p = tmp / "model.pt"
    torch.save(payload, p) if payload is not None else p.write_bytes(b"not a pickle")
    return p


class _Evil:
    def __reduce__(self):
        return (print, ("payload ran",))


def _fake_run(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "config.yaml").write_text(SweepConfig(out=tmp).to_yaml())
    return tmp / "run"


def _corrupt(d, tmp):
    coco, data = _split_copy(d, tmp)
    (tmp / "images" / coco["images"][2]["file_name"]).write_bytes(b"\xff\xd8 truncated")
    return _eval(d, d / "model.onnx", tmp, data=data)


def _missing_listed(d, tmp):
    coco, data = _split_copy(d, tmp)
    (tmp / "images" / coco["images"][1]["file_name"]).unlink()
    return _eval(d, d / "model.onnx", tmp, data=data)


def _ranking_file(tmp):
    f = tmp / "rank.json"
    f.write_text(json.dumps({"ranking": [{"node": "/model.0/conv/Conv", "op": "Conv", "score": 1.0, "rank": 1}]}))
    return f


TRIGGERS = {
    "missing-model": lambda d, t: _eval(d, t / "nope.onnx", t),
    "not-onnx": lambda d, t: (t / "bad.onnx").write_text("not a model") and _eval(d, t / "bad.onnx", t),
    "not-a-model-type": lambda d, t: (t / "w.bin").write_bytes(b"\0") and ["export", "--model", t / "w.bin", "--out", t / "o.onnx"],
    "corrupt-pt": lambda d, t: ["export", "--model", _bad_pt(t, None), "--out", t / "o.onnx"],
    "unsafe-pt": lambda d, t: ["export", "--model", _bad_pt(t, {"model": _Evil()}), "--out", t / "o.onnx"],
    "unknown-layout": lambda d, t: _eval(d, write_constant_detector(t / "cls.onnx", [1, 1000]), t),
    "class-mismatch": lambda d, t: _eval(d, write_constant_detector(t / "c80.onnx", [1, 84, 2100]), t),
    "missing-images": lambda d, t: _eval(d, d / "model.onnx", t, data=["--images", t / "none", "--annotations",
                                                                        d / "val" / "annotations.json"]),
    "missing-annotations": lambda d, t: _eval(d, d / "model.onnx", t, data=["--images", d / "val" / "images",
                                                                             "--annotations", t / "a.json"]),
    "malformed-json": lambda d, t: (t / "a.json").write_text("{oops") and _eval(
        d, d / "model.onnx", t, data=["--images", d / "val" / "images", "--annotations", t / "a.json"]),
    "json-missing-keys": lambda d, t: (t / "a.json").write_text('{"images": []}') and _eval(
        d, d / "model.onnx", t, data=["--images", d / "val" / "images", "--annotations", t / "a.json"]),
    "listed-image-missing": _missing_listed,
    "corrupt-image": _corrupt,
    "empty-subset": lambda d, t: _eval(d, d / "model.onnx", t, data=_split_copy(d, t, 0)[1]),
    "unknown-ids": lambda d, t: (t / "ids.txt").write_text("100001\n424242\n") and _eval(
        d, d / "model.onnx", t, "--image-ids", t / "ids.txt"),
    "model-without-data": lambda d, t: ["run", "--model", d / "model.onnx", "--out", t / "runs", "--quiet"],
    "model-without-calib": lambda d, t: ["run", "--model", d / "model.onnx", *_data(d), "--out", t / "runs", "--quiet"],
    "calib-no-images": lambda d, t: (t / "photos").mkdir() or ["run", "--model", d / "model.onnx", *_data(d),
                                                               "--calib-dir", t / "photos", "--out", t / "runs", "--quiet"],
    "calib-overlap": lambda d, t: ["run", "--model", d / "model.onnx", *_data(d), "--calib-dir", d / "val" / "images",
                                   "--max-images", "5", "--out", t, "--quiet"],
    "bad-k": lambda d, t: ["run", "--ks", "0,five", "--dry-run", "--out", t],
    "negative-k": lambda d, t: ["run", "--ks", "0,-1", "--dry-run", "--out", t],
    "k-too-large": lambda d, t: ["quantize", "--model", d / "model.onnx", "--scheme", "int8-qdq", "--k", "100000",
                                 "--sensitivity", _ranking_file(t), "--calib-dir", d / "calib" / "images",
                                 "--calib-count", "2", "--out", t / "c"],
    "bad-probe-top": lambda d, t: ["run", "--sensitivity-probe-top", "-3", "--dry-run", "--out", t],
    "bad-float-dtype": lambda d, t: ["quantize", "--model", d / "model.onnx", "--scheme", "int8-qdq", "--float-dtype",
                                     "bf16", "--calib-dir", d / "calib" / "images", "--out", t / "c"],
    "unknown-scheme": lambda d, t: ["run", "--schemes", "int9", "--dry-run", "--out", t],
    "unknown-backend": lambda d, t: ["bench", "--model", d / "model.onnx", "--backends", "ort-gpu", "--out", t / "b.json"],
    "unwritable-out": lambda d, t: (t / "file").write_text("x") and _eval(d, d / "model.onnx", t / "file" / "sub"),
    "result-exists": lambda d, t: (t / "m.json").write_text('{"finished": true}') and _eval(d, d / "model.onnx", t),
    "resume-other-config": lambda d, t: ["run", "--resume", _fake_run(t), "--max-images", "7", "--quiet"],
    "external-data-escape": lambda d, t: _eval(d, _external(t, "../../etc/passwd"), t),
    "opset-range": lambda d, t: _eval(d, _old_opset(t), t),
}


def _old_opset(tmp):
    p = write_constant_detector(tmp / "old.onnx", [1, 300, 6])
    m = onnx.load(str(p))
    m.opset_import[0].version = 9
    onnx.save(m, str(p))
    return p


def test_every_catalogue_case_has_a_trigger():
    assert set(TRIGGERS) == {c.key for c in CASES}


def test_readme_lists_the_catalogue():
    readme = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    assert markdown_table() in readme, "regenerate with: python -m quantsweep.troubleshooting"


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_case(case, demo_dir, tmp_path, capsys):
    argv = [str(a) for a in TRIGGERS[case.key](demo_dir, tmp_path)]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}  # what the trigger set up
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("quantsweep: note")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("quantsweep: error: ") and "Traceback" not in err, err
    assert case.says in lines[0], (case.says, lines[0])
    for p, data in before.items():  # nothing that existed was changed
        assert p.read_bytes() == data, p


def test_no_traceback_without_debug_and_traceback_with_it(demo_dir, tmp_path):
    cmd = [sys.executable, "-m", "quantsweep", *map(str, _eval(demo_dir, tmp_path / "x.onnx", tmp_path))]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "x.onnx" in plain.stderr
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_disk_full_during_a_write_leaves_the_previous_file(tmp_path, monkeypatch):
    import errno
    import os

    from quantsweep.files import atomic_write_json

    target = tmp_path / "summary.json"
    atomic_write_json(target, {"rows": [1, 2, 3]})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        atomic_write_json(target, {"rows": []})
    assert json.loads(target.read_text()) == {"rows": [1, 2, 3]}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind
