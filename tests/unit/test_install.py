"""The install layout: exactly one ONNX Runtime, nothing reaches the network."""

import socket
import subprocess
import sys

import pytest

from quantsweep.env import check_single_ort, ort_distributions


def test_exactly_one_onnxruntime_distribution():
    owners = ort_distributions()
    assert len(owners) == 1, f"several distributions own onnxruntime/: {owners}"
    assert check_single_ort() == owners[0]


def test_the_imported_onnxruntime_is_that_distribution():
    from importlib import metadata

    import onnxruntime

    name = ort_distributions()[0].split("==")[0]
    assert metadata.version(name) == onnxruntime.__version__


def test_import_quantsweep_stays_light():
    code = "import sys, quantsweep, quantsweep.cli.main; print(sorted(m for m in ('torch','ultralytics','onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_export_of_demo_checkpoint_is_offline(no_network, tmp_path):
    from quantsweep.demo import DEMO_IMGSZ, checkpoint_path
    from quantsweep.model.export import export_onnx
    from quantsweep.model.info import inspect_onnx

    out = export_onnx(checkpoint_path(), tmp_path / "m.onnx", imgsz=DEMO_IMGSZ, head="e2e")
    assert inspect_onnx(out).output_shapes[0] == (1, 300, 6)


BLOCK_HEAVY = ("import sys\n"
               "for m in ('torch', 'torchvision', 'ultralytics', 'brevitas', 'modelopt', 'openvino', 'nncf'):\n"
               "    sys.modules[m] = None  # as in a core install: importing them fails\n"
               "from quantsweep.cli.main import main\n"
               "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.slow
def test_core_evaluates_and_int8_quantizes_an_onnx_without_torch(demo_dir, tmp_path):
    """What `pip install quantsweep` (no extras) must do; .ci/run also checks it in a real core venv."""
    def run(*args):
        return subprocess.run([sys.executable, "-c", BLOCK_HEAVY, *map(str, args)], capture_output=True, text=True)

    q = run("quantize", "--model", demo_dir / "model.onnx", "--scheme", "int8", "--calib-dir",
            demo_dir / "calib" / "images", "--calib-count", "4", "--out", tmp_path / "c")
    assert q.returncode == 0, q.stderr
    e = run("eval", "--model", tmp_path / "c" / "int8-qdq.onnx", "--images", demo_dir / "val" / "images",
            "--annotations", demo_dir / "val" / "annotations.json", "--max-images", "10", "--out", tmp_path / "m.json")
    assert e.returncode == 0, e.stderr
    b = run("bench", "--model", demo_dir / "model.onnx", "--model", tmp_path / "c" / "int8-qdq.onnx",
            "--backend", "ort-cpu", "--iters", "3", "--out", tmp_path / "b.json")
    assert b.returncode == 0, b.stderr
    blocked = run("quantize", "--model", demo_dir / "model.onnx", "--scheme", "int8-trt", "--calib-dir",
                  demo_dir / "calib" / "images", "--out", tmp_path / "t")
    assert blocked.returncode == 2 and "quantsweep[modelopt]" in blocked.stderr, blocked.stderr
    pt = run("export", "--model", demo_dir / "model.pt", "--out", tmp_path / "x.onnx")
    assert pt.returncode == 2 and "quantsweep[ultralytics]" in pt.stderr, pt.stderr


def _extras():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    return [e for e in project["optional-dependencies"] if e not in ("test", "dev")]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [None, *_extras()])
def test_every_install_combination_resolves_to_one_onnxruntime_and_one_opencv(extra, tmp_path):
    """pip's own resolver, on this project's files: core and each extra (``all`` = every extra)."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    target = f"{root}[{extra}]" if extra else str(root)
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), target], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "No matching distribution" in proc.stderr + proc.stdout:
        pytest.skip(f"the package index is not reachable here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert len(names & {"onnxruntime", "onnxruntime-gpu"}) == 1, sorted(names)
    assert len(names & {"opencv-python", "opencv-python-headless", "opencv-contrib-python"}) == 1, sorted(names)
    assert ("torch" in names) == (extra in ("ultralytics", "modelopt", "all")), sorted(names)
