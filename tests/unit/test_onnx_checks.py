"""ONNX files are checked before use: external data stays in the model's folder, opset, validity."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.conftest import write_constant_detector, write_external_data_detector

from quantsweep.errors import QuantsweepError
from quantsweep.model.info import inspect_onnx


def test_external_data_path_traversal_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.zeros(1800, np.float32).tobytes())
    (tmp_path / "models").mkdir()
    model = write_external_data_detector(tmp_path / "models" / "m.onnx", "../secret.bin")
    with pytest.raises(QuantsweepError, match="outside the model's folder"):
        inspect_onnx(model)


def test_missing_external_data_is_named(tmp_path):
    model = write_external_data_detector(tmp_path / "m.onnx", "weights.data")
    with pytest.raises(QuantsweepError, match="weights.data"):
        inspect_onnx(model)


def test_opset_out_of_range(tmp_path):
    p = write_constant_detector(tmp_path / "old.onnx", [1, 300, 6])
    m = onnx.load(str(p))
    m.opset_import[0].version = 9
    onnx.save(m, str(p))
    with pytest.raises(QuantsweepError, match="opset 9"):
        inspect_onnx(p)


def test_invalid_graph_is_refused(tmp_path):
    node = helper.make_node("Add", ["images", "missing_tensor"], ["output0"])
    g = helper.make_graph([node], "bad", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 320, 320])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 300, 6])],
                          [numpy_helper.from_array(np.zeros(1, np.float32), "unused")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(tmp_path / "bad.onnx"))
    with pytest.raises(QuantsweepError, match="not a valid ONNX model"):
        inspect_onnx(tmp_path / "bad.onnx")


def test_two_inputs_are_refused(tmp_path):
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["o"])], "two",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in "ab"],
                          [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "two.onnx"))
    with pytest.raises(QuantsweepError, match="one image input"):
        inspect_onnx(tmp_path / "two.onnx")


def test_model_larger_than_memory_is_refused(tmp_path, monkeypatch):
    import psutil

    p = write_constant_detector(tmp_path / "big.onnx", [1, 300, 6])

    class Tiny:
        available = 1000  # bytes

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(QuantsweepError, match="exceeds 50% of the available memory"):
        inspect_onnx(p)


def test_openvino_ir_is_inspected_fingerprinted_and_refused_by_onnx_runtime(tmp_path):
    """An IR candidate: read by OpenVINO (layout found), its .bin in the sha256, ORT says it cannot run it."""
    ov = pytest.importorskip("openvino")
    from pathlib import Path

    from quantsweep.deploy.recommended import run_command
    from quantsweep.files import ModelFile, sha256_file
    from quantsweep.model.formats import inspect_model
    from quantsweep.runtimes.ort import open_ort

    onnx_path = write_constant_detector(tmp_path / "m.onnx", [1, 300, 6])
    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml))
    info = inspect_model(xml)  # any format (quantsweep.model.formats)
    assert info.hw == (320, 320) and info.fixed_batch == 1 and info.layout is not None
    assert ModelFile.of(xml).files == [xml, tmp_path / "m.bin"] and ModelFile.find(tmp_path, "m").path == xml
    before = sha256_file(xml)
    data = bytearray((tmp_path / "m.bin").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "m.bin").write_bytes(bytes(data))
    assert sha256_file(xml) != before  # weights changed, .xml did not
    with pytest.raises(QuantsweepError, match="OpenVINO IR file: ONNX Runtime cannot open it"):
        open_ort(xml)
    assert "--provider openvino" in run_command("m", "ort-cpu", "m.xml", Path("a.jpg"))
    assert "openvino" in run_command("m", "ort-cpu", "m.xml") and "'m.xml'" in run_command("m", "ort-cpu", "m.xml")
    (tmp_path / "m.bin").unlink()
    with pytest.raises(QuantsweepError, match="keep the .xml and .bin side by side"):
        inspect_model(xml)
