"""A runtime is one module + one registry line: a toy runtime, registered and nothing else, goes
through a small ``quantsweep run`` (target selection, scoring, timing, the table, the report,
``recommended/``) and ``quantsweep predict``."""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantsweep.runtimes import RUNTIMES
from quantsweep.runtimes.base import BenchSettings, Prepared, check_batch, is_quantized
from quantsweep.runtimes.ort import open_ort

pytestmark = pytest.mark.slow  # one small sweep


@dataclass
class ToySession:
    inner: Any
    provider: str = "toy session"
    threads: int = 1
    graph_optimization: str = "toy"
    input_name: str = "images"

    def run(self, pixels: Any) -> Any:
        return self.inner.run(pixels)


@dataclass(frozen=True)
class ToyRuntime:
    """Scores with ONNX Runtime CPU inside; 'runs' a quantized model in 2 ms and a float one in 6 ms."""

    name: str = "toy"
    title: str = "Toy runtime"
    extra: str | None = None
    provider: str = "toy"
    formats: tuple[str, ...] = ("onnx",)
    needs_gpu: bool = False

    def unavailable(self) -> None:
        return None

    def open(self, model: Path, threads: int | None = None, graph_optimization: str = "all") -> ToySession:
        return ToySession(open_ort(model, "cpu", threads, graph_optimization))

    def group(self, models: Any, work: Path) -> list[tuple[str, Path]]:
        return list(models)

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        _, hw = check_batch(model, batch)
        quantized = is_quantized(model)
        pause = 0.002 if quantized else 0.006
        return Prepared(lambda x: time.sleep(pause), "accelerated" if quantized else "float",
                        {"toy": True}, {"runtime": "toy 1.0", "provider": "toy", "input_shape": [batch, 3, *hw]})

    def open_code(self, file: str) -> str:
        return f"import toy\nrun = toy.open({file!r}).run"


def test_a_toy_runtime_goes_through_a_run_and_predict(tmp_path, monkeypatch, demo_dir):
    from quantsweep.cli.main import main
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.runner import run_sweep

    monkeypatch.setitem(RUNTIMES, "toy", ToyRuntime())
    cfg = SweepConfig(out=tmp_path / "runs", schemes=("int8-qdq",), backends=("toy",), max_images=20, calib_count=8,
                      bench_seconds=0.3, bootstrap=200, sensitivity_images=1, confirm_images=40, confirm_step=20,
                      finalists=1, budget=100.0, max_evals=0)  # the plumbing, not the search (no K probes)
    d = run_sweep(cfg).run_dir
    assert json.loads((d / "target.json").read_text())["target"] == "toy"
    metrics = json.loads((d / "results" / "int8-qdq.metrics.json").read_text())
    assert metrics["run"]["provider"] == "toy session" and metrics["settings"]["provider"] == "toy"
    labels = {n: json.loads((d / "results" / f"{n}.toy.bench.json").read_text())["rows"][0]["label"]
              for n in ("fp32", "int8-qdq")}
    assert labels == {"fp32": "float", "int8-qdq": "accelerated"}
    summary = json.loads((d / "results" / "summary.json").read_text())
    rows = {r["candidate"]: r for r in summary["rows"]}
    assert rows["int8-qdq"]["backend"] == "toy" and rows["int8-qdq"]["speedup_vs_fp32"] > 2
    rec = summary["recommendation"]
    assert (rec["candidate"], rec["backend"]) == ("int8-qdq", "toy"), rec
    assert "| toy |" in (d / "results" / "summary.md").read_text()
    page = (d / "report.html").read_text()
    assert "<code>int8-qdq</code> on toy</h1>" in page  # the report's headline names the pick on the toy runtime
    assert "<h3>toy (the decision’s runtime)</h3>" in page  # and its table leads with the toy runtime's rows
    readme = (d / "recommended" / "README.md").read_text()
    assert "--provider toy" in readme and "toy.open('int8-qdq.onnx')" in readme
    image = next(p for p in sorted((demo_dir / "val" / "images").iterdir()))
    assert main(["predict", "--model", str(d / "recommended" / "int8-qdq.onnx"), "--images", str(image),
                 "--provider", "toy", "--out", str(tmp_path / "pred")]) == 0
    found = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert found["runtime"] == "toy session" and np.isfinite([d["score"] for d in found["detections"]]).all()
