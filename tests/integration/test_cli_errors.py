"""Bad input: one clear line naming the file and the fix, exit code 2, no traceback, nothing lost."""

import json
import subprocess
import sys

import pytest

from quantsweep.cli import main
from tests.conftest import write_constant_detector


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("quantsweep: error: ") and "Traceback" not in err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


@pytest.fixture
def data(demo_dir):
    return ["--images", demo_dir / "val" / "images", "--annotations", demo_dir / "val" / "annotations.json"]


def _eval(capsys, model, data, out, *extra):
    return run_cli(capsys, "eval", "--model", model, *data, "--out", out, *extra)


def test_missing_model(capsys, data, tmp_path):
    code, _, err = _eval(capsys, tmp_path / "nope.onnx", data, tmp_path / "m.json")
    assert_one_line_error(code, err, "nope.onnx", "not found")


def test_not_onnx(capsys, data, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a model")
    code, _, err = _eval(capsys, bad, data, tmp_path / "m.json")
    assert_one_line_error(code, err, "bad.onnx", "not a readable ONNX")


def test_not_a_model_file_for_export(capsys, tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"\x00" * 10)
    code, _, err = run_cli(capsys, "export", "--model", bad, "--out", tmp_path / "o.onnx")
    assert_one_line_error(code, err, "weights.bin", ".pt")


def test_corrupt_pt(capsys, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a pickle at all")
    code, _, err = run_cli(capsys, "export", "--model", bad, "--out", tmp_path / "o.onnx")
    assert_one_line_error(code, err, "broken.pt", "Ultralytics")


def test_unknown_layout(capsys, data, tmp_path):
    m = write_constant_detector(tmp_path / "cls.onnx", [1, 1000])
    code, _, err = _eval(capsys, m, data, tmp_path / "m.json")
    assert_one_line_error(code, err, "cls.onnx", "[1, 1000]")


def test_class_count_mismatch(capsys, data, tmp_path):
    m = write_constant_detector(tmp_path / "coco80.onnx", [1, 84, 2100])
    code, _, err = _eval(capsys, m, data, tmp_path / "m.json")
    assert_one_line_error(code, err, "80 classes", "5 categories")


def test_missing_images_dir(capsys, demo_dir, tmp_path):
    code, _, err = _eval(capsys, demo_dir / "model.onnx",
                         ["--images", tmp_path / "none", "--annotations", demo_dir / "val" / "annotations.json"],
                         tmp_path / "m.json")
    assert_one_line_error(code, err, "none", "--images")


def test_missing_annotations(capsys, demo_dir, tmp_path):
    code, _, err = _eval(capsys, demo_dir / "model.onnx",
                         ["--images", demo_dir / "val" / "images", "--annotations", tmp_path / "a.json"],
                         tmp_path / "m.json")
    assert_one_line_error(code, err, "a.json", "not found")


@pytest.mark.parametrize("content, needle", [("{oops", "not valid JSON"),
                                             (json.dumps({"images": [], "annotations": []}), "'categories'")])
def test_malformed_annotations(capsys, demo_dir, tmp_path, content, needle):
    ann = tmp_path / "bad.json"
    ann.write_text(content)
    code, _, err = _eval(capsys, demo_dir / "model.onnx",
                         ["--images", demo_dir / "val" / "images", "--annotations", ann], tmp_path / "m.json")
    assert_one_line_error(code, err, "bad.json", needle)


def _copy_split(demo_dir, tmp_path, n=3):
    import shutil

    coco = json.loads((demo_dir / "val" / "annotations.json").read_text())
    coco["images"] = coco["images"][:n]
    keep = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (tmp_path / "images").mkdir()
    for im in coco["images"]:
        shutil.copy(demo_dir / "val" / "images" / im["file_name"], tmp_path / "images")
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return coco, ["--images", tmp_path / "images", "--annotations", tmp_path / "ann.json"]


def test_listed_image_missing(capsys, demo_dir, tmp_path):
    coco, data = _copy_split(demo_dir, tmp_path)
    name = coco["images"][1]["file_name"]
    (tmp_path / "images" / name).unlink()
    code, _, err = _eval(capsys, demo_dir / "model.onnx", data, tmp_path / "m.json")
    assert_one_line_error(code, err, name, "missing")


def test_corrupt_image(capsys, demo_dir, tmp_path):
    coco, data = _copy_split(demo_dir, tmp_path)
    name = coco["images"][2]["file_name"]
    (tmp_path / "images" / name).write_bytes(b"\xff\xd8 truncated")
    code, _, err = _eval(capsys, demo_dir / "model.onnx", data, tmp_path / "m.json")
    assert_one_line_error(code, err, name, "cannot be decoded")


def test_empty_subset(capsys, demo_dir, tmp_path):
    coco, data = _copy_split(demo_dir, tmp_path, n=0)
    code, _, err = _eval(capsys, demo_dir / "model.onnx", data, tmp_path / "m.json")
    assert_one_line_error(code, err, "ann.json", "empty")


def test_unknown_ids(capsys, demo_dir, data, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("100001\n424242\n")
    code, _, err = _eval(capsys, demo_dir / "model.onnx", data, tmp_path / "m.json", "--image-ids", ids)
    assert_one_line_error(code, err, "ids.txt", "424242")


def test_existing_result_is_not_overwritten(capsys, demo_dir, data, tmp_path):
    out = tmp_path / "m.json"
    out.write_text('{"finished": true}')
    code, _, err = _eval(capsys, demo_dir / "model.onnx", data, out)
    assert_one_line_error(code, err, "m.json", "--overwrite")
    assert out.read_text() == '{"finished": true}'


def test_no_traceback_without_debug_and_traceback_with_it(demo_dir, tmp_path):
    cmd = [sys.executable, "-m", "quantsweep", "eval", "--model", str(tmp_path / "x.onnx"), "--images",
           str(demo_dir / "val" / "images"), "--annotations", str(demo_dir / "val" / "annotations.json"),
           "--out", str(tmp_path / "m.json")]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "x.onnx" in plain.stderr
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
