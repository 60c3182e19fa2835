"""The per-node profile adds up to the call it profiles and names the precisions the runtime executed."""

import json

import pytest

from quantsweep.bench.profile import aggregate, profile_model


def test_aggregate_sums_by_operator_and_precision_and_ranks_the_nodes():
    nodes = [{"name": "c1", "op": "Convolution", "precision": "u8", "ms": 2.0},
             {"name": "r1", "op": "Reorder", "precision": "f32", "ms": 0.5},
             {"name": "c2", "op": "Convolution", "precision": "bf16", "ms": 1.0},
             {"name": "s", "op": "Softmax", "precision": "f32", "ms": 0.5}]
    a = aggregate(nodes, top=2)
    assert a["total_ms"] == 4.0 and a["by_op"] == {"Convolution": 3.0, "Reorder": 0.5, "Softmax": 0.5}
    assert a["by_precision"] == {"u8": 2.0, "f32": 1.0, "bf16": 1.0} and a["conv_share"] == 0.75
    assert [n["name"] for n in a["top"]] == ["c1", "c2"] and a["reorders"] == {"count": 1, "ms": 0.5}


@pytest.mark.parametrize("runtime", ["openvino", "ort-cpu"])
def test_the_profile_accounts_for_the_measured_call(demo_dir, runtime):
    """The nodes' time is within 25 % of the median latency measured in the same process, counters on."""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    p = profile_model(demo_dir / "model.onnx", runtime, runs=20)
    assert 0.75 <= p["total_ms"] / p["latency_p50_ms"] <= 1.25, p
    assert p["nodes"] > 20 and 0 < p["conv_share"] < 1 and len(p["top"]) == 15
    assert sum(p["by_op"].values()) == pytest.approx(p["total_ms"], abs=1e-3)


def test_openvino_precisions_are_the_executed_graphs(demo_dir):
    ov = pytest.importorskip("openvino")
    p = profile_model(demo_dir / "model.onnx", "openvino", runs=5)
    compiled = ov.Core().compile_model(str(demo_dir / "model.onnx"), "CPU")
    executed = {op.get_friendly_name(): str(op.get_rt_info()["runtimePrecision"].astype(str))
                for op in compiled.get_runtime_model().get_ordered_ops()}
    assert all(n["precision"] == executed[n["name"]] for n in p["top"]), p["top"]


def test_profile_command_writes_json(demo_dir, tmp_path, capsys):
    from quantsweep.cli.main import main

    out = tmp_path / "p.json"
    assert main(["profile", "--model", str(demo_dir / "model.onnx"), "--backends", "ort-cpu", "--runs", "3",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["ort-cpu"] and data["ort-cpu"]["by_precision"] == {"fp32": data["ort-cpu"]["total_ms"]}
    assert "| node | operator | precision | ms |" in capsys.readouterr().out
