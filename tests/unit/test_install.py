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


def test_export_of_demo_checkpoint_is_offline_and_cached_byte_for_byte(no_network, tmp_path, monkeypatch):
    from quantsweep.demo import DEMO_IMGSZ, checkpoint_path
    from quantsweep.model.export import export_onnx
    from quantsweep.model.info import inspect_onnx

    monkeypatch.setenv("QUANTSWEEP_CACHE", str(tmp_path / "cache"))  # an empty cache: a real export
    out = export_onnx(checkpoint_path(), tmp_path / "m.onnx", imgsz=DEMO_IMGSZ, head="e2e")
    assert inspect_onnx(out).output_shapes[0] == (1, 300, 6)
    cached = list((tmp_path / "cache" / "exports").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].read_bytes() == out.read_bytes()
    again = export_onnx(checkpoint_path(), tmp_path / "again.onnx", imgsz=DEMO_IMGSZ, head="e2e")
    assert again.read_bytes() == out.read_bytes()  # served from the cache
    raw = export_onnx(checkpoint_path(), tmp_path / "raw.onnx", imgsz=DEMO_IMGSZ, head="raw")
    assert inspect_onnx(raw).output_shapes[0] != (1, 300, 6)  # other settings: another cache entry
    assert len(list((tmp_path / "cache" / "exports").glob("*.onnx"))) == 2


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

    q = run("quantize", "--model", demo_dir / "model.onnx", "--scheme", "int8-qdq", "--calib-dir",
            demo_dir / "calib" / "images", "--calib-count", "4", "--out", tmp_path / "c")
    assert q.returncode == 0, q.stderr
    e = run("eval", "--model", tmp_path / "c" / "int8-qdq.onnx", "--images", demo_dir / "val" / "images",
            "--annotations", demo_dir / "val" / "annotations.json", "--max-images", "10", "--out", tmp_path / "m.json")
    assert e.returncode == 0, e.stderr
    b = run("bench", "--model", demo_dir / "model.onnx", "--model", tmp_path / "c" / "int8-qdq.onnx",
            "--backends", "ort-cpu", "--iters", "3", "--out", tmp_path / "b.json")
    assert b.returncode == 0, b.stderr
    blocked = run("quantize", "--model", demo_dir / "model.onnx", "--scheme", "int8-trt", "--calib-dir",
                  demo_dir / "calib" / "images", "--out", tmp_path / "t")
    assert blocked.returncode == 2 and "quantsweep[modelopt]" in blocked.stderr, blocked.stderr
    pt = run("export", "--model", demo_dir / "model.pt", "--out", tmp_path / "x.onnx")
    assert pt.returncode == 2 and "quantsweep[ultralytics]" in pt.stderr, pt.stderr
