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
    """The nodes' time is within 25 % of the median latency measured in the same process, counters on.
    The machine is shared (another test worker may run beside this one): a profile taken while a burst of
    load lands on one side of the comparison is retaken, up to three times, and all the ratios are shown."""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    ratios = []
    for _ in range(3):
        p = profile_model(demo_dir / "model.onnx", runtime, runs=20)
        ratios.append(round(p["total_ms"] / p["latency_p50_ms"], 3))
        if 0.75 <= ratios[-1] <= 1.25:
            break
    assert 0.75 <= ratios[-1] <= 1.25, ratios
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


def test_the_run_profiles_fp32_its_finalists_and_its_fastest_candidate_once_each(tmp_path):
    from quantsweep.ledger import Candidate, Ledger, Measurement
    from quantsweep.sweep.stage_profile import profile_subjects

    ledger = Ledger()
    for name, speed, label in (("fp32", 1.0, "float"), ("int8-ov", 1.2, "accelerated"),
                               ("int8-qdq", 1.5, "accelerated"), ("fp8-qdq", 3.0, "emulated"),
                               ("broken", 9.0, "accelerated")):
        (tmp_path / f"{name}.onnx").write_bytes(b"x")
        ledger.add(Candidate(name, None, tmp_path / f"{name}.onnx"))
        ledger.measure(Measurement(name, "openvino", {"rows": [{"label": label, "speedup_vs_fp32": speed}]}))
    ledger["broken"].fail("evaluation failed")
    # the fastest accelerated candidate (not the emulated one, not a failed one) joins FP32 and the finalists
    assert profile_subjects(ledger, "openvino", []) == ["fp32", "int8-qdq"]
    assert profile_subjects(ledger, "openvino", ["int8-ov", "int8-qdq"]) == ["fp32", "int8-ov", "int8-qdq"]
    (tmp_path / "int8-ov.onnx").unlink()  # no file, nothing to profile
    assert profile_subjects(ledger, "openvino", ["int8-ov", "int8-qdq"]) == ["fp32", "int8-qdq"]


def test_the_report_compares_fp32_with_the_pick_else_the_closest_else_the_quickest(tmp_path):
    import json

    from quantsweep.report.profiles import compared, profile_plot, read_profiles
    from quantsweep.results import Decision

    def write(name, latency):
        p = {"runtime": "OpenVINO CPU", "runs": 5, "latency_p50_ms": latency, "total_ms": latency * 0.9,
             "conv_share": 0.6, "by_op": {"Convolution": latency * 0.54, "Add": latency * 0.36},
             "by_precision": {"u8": latency * 0.9}, "reorders": {"count": 1, "ms": 0.1}}
        (tmp_path / f"profile.{name}.openvino.json").write_text(json.dumps(p))

    for name, latency in (("int8-ov", 5.0), ("fp32", 6.0), ("int8-qdq", 4.0)):
        write(name, latency)
    found = read_profiles(tmp_path, "openvino")
    assert list(found)[0] == "fp32" and set(found) == {"fp32", "int8-ov", "int8-qdq"}
    assert compared(found, Decision("int8-ov", "openvino", "picked")) == "int8-ov"
    assert compared(found, Decision("fp32", "openvino", "stays", closest="int8-ov")) == "int8-ov"
    assert compared(found, Decision("fp32", "openvino", "stays")) == "int8-qdq"  # the shortest call
    assert read_profiles(tmp_path, "ort-cpu") == {}
    out = profile_plot(found, Decision("int8-ov", "openvino", "picked"), tmp_path / "profile.png")
    assert out is not None and out.stat().st_size > 1000 and out.with_suffix(".svg").is_file()
    assert profile_plot({}, Decision("fp32", "openvino", "stays"), tmp_path / "profile.png") is None
    assert not (tmp_path / "profile.png").exists()  # a stale picture does not outlive its profiles


def test_a_decision_that_stays_on_fp32_says_where_the_time_goes(tmp_path):
    import json

    from quantsweep.results import Decision
    from quantsweep.sweep.stage_decide import _say_where_the_time_goes

    for name, conv, total in (("fp32", 0.6, 8.0), ("int8-ov", 0.4, 8.5)):
        (tmp_path / f"profile.{name}.openvino.json").write_text(json.dumps(
            {"total_ms": total, "conv_share": conv, "reorders": {"count": 4, "ms": 0.5}, "latency_p50_ms": total}))
    stays = _say_where_the_time_goes(tmp_path, Decision("fp32", "openvino", "no candidate is faster"))
    assert stays.reason.startswith("no candidate is faster. Where the time goes: int8-ov against FP32")
    assert "convolutions 3.40 ms vs 4.80 ms (1.40 ms saved)" in stays.reason
    picked = Decision("int8-ov", "openvino", "fastest")
    assert _say_where_the_time_goes(tmp_path, picked) == picked  # a pick is explained by its speed-up


def test_the_profile_command_reads_an_openvino_ir_and_lists_every_node(demo_dir, tmp_path, capsys):
    """An IR (the int8-ov candidates' format) profiles like an ONNX file; ``every_node`` holds each executed node."""
    ov = pytest.importorskip("openvino")
    from quantsweep.cli.main import main

    xml = tmp_path / "model.xml"
    ov.save_model(ov.convert_model(str(demo_dir / "model.onnx")), str(xml), compress_to_fp16=False)
    out = tmp_path / "p.json"
    assert main(["profile", "--model", str(xml), "--backends", "openvino", "--runs", "5", "--out", str(out)]) == 0
    p = json.loads(out.read_text())["openvino"]
    assert len(p["every_node"]) == p["nodes"] > 20 and p["every_node"][0]["ms"] >= p["every_node"][-1]["ms"]
    assert sum(n["ms"] for n in p["every_node"]) == pytest.approx(p["total_ms"], abs=1e-3)
    assert "model.xml on OpenVINO" in capsys.readouterr().out
