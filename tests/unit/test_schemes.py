"""The scheme registry: every entry builds, names itself, and round-trips through JSON."""

import json

import pytest

from quantsweep.errors import QuantsweepError
from quantsweep.schemes import K_SCHEMES, REGISTRY, make_scheme, scheme_from_dict, scheme_to_dict
from quantsweep.schemes.ort_int8 import resolve_reduce_range


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_scheme_round_trips_through_json(name):
    scheme = make_scheme(name)
    back = scheme_from_dict(json.loads(json.dumps(scheme_to_dict(scheme))))
    assert back == scheme and back.name == scheme.name


@pytest.mark.parametrize("name", sorted(K_SCHEMES))
def test_k_appears_in_the_name(name):
    assert make_scheme(name, k=10).name.endswith("-k10")
    assert make_scheme(name, k=0).name != make_scheme(name, k=10).name


def test_names_are_unique_and_short():
    names = [make_scheme(n).name for n in REGISTRY]
    assert len(set(names)) == len(names)
    assert make_scheme("int8-qdq").name == "int8-qdq" and make_scheme("fp8-qdq", k=10).name == "fp8-qdq-k10"
    assert make_scheme("w4a16-mse").name == "w4a16-mse"
    assert make_scheme("w4a16-graph-gptq", k=4).name == "w4a16-graph-gptq-k4"


def test_unknown_scheme_suggests():
    with pytest.raises(QuantsweepError, match="did you mean 'int8-qdq'"):
        make_scheme("imt8")


def test_invalid_fields_are_errors():
    with pytest.raises(QuantsweepError, match="calibration"):
        make_scheme("int8-qdq", calibration="median")
    with pytest.raises(QuantsweepError, match="K=5"):
        make_scheme("w8a16", k=5)
    with pytest.raises(QuantsweepError, match="invalid setting"):
        make_scheme("int8-qdq", bogus=1)


def test_onnx_only_input_gets_graph_weight_only():
    assert make_scheme("w8a16", onnx_only=True).name == "w8a16-graph"
    assert make_scheme("w4a16-mse", onnx_only=True).name == "w4a16-graph-gptq-asym"


def test_reduce_range_follows_vnni():
    assert resolve_reduce_range("auto", vnni=False) is True
    assert resolve_reduce_range("auto", vnni=True) is False
    assert resolve_reduce_range("on") is True and resolve_reduce_range("off") is False


def test_float_dtype_is_a_field_of_every_scheme_and_named():
    names = {"int8": "int8-qdq-fp16-k5", "int8-trt": "int8-trt-fp16-k5", "fp8": "fp8-qdq-fp16-k5"}
    for reg, expected in names.items():
        s = make_scheme(reg, k=5, float_dtype="fp16")
        assert s.name == expected and scheme_from_dict(scheme_to_dict(s)) == s
    assert make_scheme("w8a16", float_dtype="fp16").name == "w8a16-fp16"
    assert make_scheme("w4a16-graph-gptq", float_dtype="fp16").name == "w4a16-graph-gptq-fp16"
    assert make_scheme("w4a16-graph-mse").name == "w4a16-graph-mse"
    assert make_scheme("int8-qdq-u8w").name == "int8-qdq-u8w"
    for reg, expected in (("int8", "int8-qdq-calgrid-k3"), ("int8-ov", "int8-ov-calgrid-k3")):
        s = make_scheme(reg, k=3, input_grid="calibrated")  # the input quantizer as calibrated: another file
        assert s.name == expected and scheme_from_dict(scheme_to_dict(s)) == s
        with pytest.raises(QuantsweepError, match="input_grid"):
            make_scheme(reg, input_grid="exact")
    for reg in ("int8", "w8a16", "w8a16-graph", "fp8"):
        with pytest.raises(QuantsweepError, match="float dtype"):
            make_scheme(reg, float_dtype="bf16")
