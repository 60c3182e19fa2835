"""Real exports of the demo checkpoint: both heads, dynamic batch, and their evaluation."""

import json

import numpy as np
import pytest

from quantsweep.data.coco import select_ids
from quantsweep.demo import DEMO_IMGSZ
from quantsweep.evaluate.run import EvalSettings, evaluate, predict
from quantsweep.model.export import export_onnx
from quantsweep.model.info import inspect_onnx


@pytest.fixture(scope="module")
def raw_onnx(demo_dir, tmp_path_factory):
    return export_onnx(demo_dir / "model.pt", tmp_path_factory.mktemp("raw") / "raw.onnx",
                       imgsz=DEMO_IMGSZ, head="raw")


def test_heads_have_their_layouts(demo_dir, raw_onnx):
    e2e = inspect_onnx(demo_dir / "model.onnx")
    assert (e2e.layout, e2e.output_shapes[0]) == ("e2e", (1, 300, 6))
    raw = inspect_onnx(raw_onnx)
    assert (raw.layout, raw.num_classes, raw.output_shapes[0]) == ("raw", 5, (1, 9, 2100))


def test_onnx_passes_through(demo_dir, tmp_path):
    out = export_onnx(demo_dir / "model.onnx", tmp_path / "copy.onnx")
    assert out.read_bytes() == (demo_dir / "model.onnx").read_bytes()


def test_dynamic_batch_export_runs_batched(demo_dir, demo_val, tmp_path):
    out = export_onnx(demo_dir / "model.pt", tmp_path / "dyn.onnx", imgsz=DEMO_IMGSZ, head="e2e",
                      dynamic_batch=True)
    info = inspect_onnx(out)
    assert info.fixed_batch is None and info.hw == (DEMO_IMGSZ, DEMO_IMGSZ)
    ids = select_ids(demo_val, 6)
    one, _ = predict(out, demo_val, ids, EvalSettings(batch=1, provider="cpu"))
    four, facts = predict(out, demo_val, ids, EvalSettings(batch=4, provider="cpu"))
    assert facts["batch"] == 4 and len(one) == len(four) > 0
    a = np.array([d["bbox"] for d in one])
    b = np.array([d["bbox"] for d in four])
    assert np.allclose(a, b, atol=0.05)


def test_eval_writes_metrics_json(demo_dir, demo_val, tmp_path):
    out = tmp_path / "m.json"
    ids = select_ids(demo_val, 20)
    m = evaluate(demo_dir / "model.onnx", demo_val, ids, EvalSettings(provider="cpu"), out)
    saved = json.loads(out.read_text())
    for key in ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large", "num_images",
                "num_detections", "settings", "model", "dataset"):
        assert key in saved
    assert saved["num_images"] == 20 and saved["model"]["sha256"] == m["model"]["sha256"]
    assert (tmp_path / "m.ids.txt").read_text().split() == [str(i) for i in ids]
    assert saved["run"]["layout"] == "e2e" and saved["run"]["provider"] == "CPUExecutionProvider"


def test_sharded_evaluation_gives_the_same_detections_and_metrics(tmp_path, demo_dir, demo_val):
    from quantsweep.data.coco import select_ids
    from quantsweep.evaluate.run import EvalSettings, evaluate, shards_of
    from quantsweep.sweep.executors import local_map

    ds = demo_val
    ids = select_ids(ds, 13)
    assert shards_of(ids, 3, 2) == [ids[0:6], ids[6:12], ids[12:13]]  # whole batches per shard
    one = evaluate(demo_dir / "model.onnx", ds, ids, EvalSettings(batch=2), tmp_path / "one.json")
    many = evaluate(demo_dir / "model.onnx", ds, ids, EvalSettings(batch=2), tmp_path / "many.json",
                    shards=3, shard_map=local_map)
    assert many["run"]["shards"] == 3
    assert (tmp_path / "one.detections.json").read_bytes() == (tmp_path / "many.detections.json").read_bytes()
    assert {k: v for k, v in one.items() if k not in ("run", "detections_file", "dataset")} == \
           {k: v for k, v in many.items() if k not in ("run", "detections_file", "dataset")}
