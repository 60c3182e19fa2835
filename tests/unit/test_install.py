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
