"""Accuracy of one ONNX detector on a fixed COCO subset -> a metrics JSON.

Example:
    >>> ds = load_dataset(Path("demo/val/images"), Path("demo/val/annotations.json"))  # doctest: +SKIP
    >>> m = evaluate(Path("demo/model.onnx"), ds, select_ids(ds, 100), EvalSettings())  # doctest: +SKIP
    >>> m["map50_95"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from quantsweep import __version__
from quantsweep.data.coco import Dataset, write_ids_file
from quantsweep.data.letterbox import Batch, iter_batches
from quantsweep.errors import QuantsweepError, first_line
from quantsweep.evaluate.decode import decode, to_coco
from quantsweep.evaluate.metrics import coco_map, per_class_ap
from quantsweep.files import ModelFile, atomic_write_json, sha256_file
from quantsweep.model.formats import inspect_model
from quantsweep.model.layouts import DetectorLayout, detect_layout

__all__ = ["EvalSettings", "evaluate", "predict", "predict_sharded", "shards_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    """Decoding and runtime settings of an evaluation (Ultralytics' validator defaults)."""

    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    batch: int = 1
    provider: str = "auto"
    imgsz: int | None = None  # only used when the model's height/width are dynamic
    threads: int | None = None
    graph_optimization: str = "all"

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise QuantsweepError(f"conf must be in [0, 1] (got {self.conf})", "use e.g. conf 0.001", "conf")
        if not 0.0 < self.iou <= 1.0:
            raise QuantsweepError(f"iou must be in (0, 1] (got {self.iou})", "use e.g. iou 0.7", "iou")
        if self.max_det < 1:
            raise QuantsweepError(f"max_det must be at least 1 (got {self.max_det})", "use e.g. max_det 300", "max_det")
        if self.batch < 1:
            raise QuantsweepError(f"batch must be at least 1 (got {self.batch})", "use e.g. batch 1", "batch")


def predict(model: Path, ds: Dataset, ids: Sequence[int], settings: EvalSettings,
            progress: Callable[[int], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``model`` over ``ids`` and return (COCO detections, run facts).

    Run facts: layout, provider, batch, input size, pure inference seconds, wall seconds.
    """
    from quantsweep.runtimes import open_session
    from quantsweep.runtimes.base import Streaming

    info = inspect_model(model, settings.imgsz)
    hw = info.hw or ((settings.imgsz, settings.imgsz) if settings.imgsz else None)
    if hw is None:
        raise QuantsweepError(f"{model} has a dynamic input size", "pass --imgsz")
    batch = settings.batch
    if info.fixed_batch is not None and info.fixed_batch != batch:
        log.warning("%s has a fixed batch of %d; evaluating with batch %d instead of %d",
                    model, info.fixed_batch, info.fixed_batch, batch)
        batch = info.fixed_batch
    if info.num_classes is not None and info.num_classes != ds.num_classes:
        raise QuantsweepError(
            f"{model} predicts {info.num_classes} classes but {ds.annotations} has {ds.num_classes} categories",
            "evaluate on the dataset the model was trained for")
    sess = open_session(model, settings.provider, settings.threads, settings.graph_optimization)
    layout: DetectorLayout | None = info.layout
    detections: list[dict[str, Any]] = []
    infer_s = 0.0
    t0 = time.perf_counter()
    batches = iter_batches(ds, ids, hw, batch, pad_to_batch=info.fixed_batch is not None)
    if isinstance(sess, Streaming):  # several requests in flight: the same outputs, more images per second
        pairs: Iterator[tuple[Batch, Any]] = sess.run_many(batches, lambda b: b.pixels, -(-len(ids) // batch))
    else:
        pairs = ((b, sess.run(b.pixels)) for b in batches)
    while True:
        t = time.perf_counter()
        pair = next(pairs, None)  # the runtime's time, and the wait for the next image's letterbox
        infer_s += time.perf_counter() - t
        if pair is None:
            break
        b, out = pair
        if layout is None:
            layout, nc = detect_layout(out.shape, hw, source=str(model))
            if nc and nc != ds.num_classes:
                raise QuantsweepError(
                    f"{model} predicts {nc} classes but {ds.annotations} has {ds.num_classes} categories",
                    "evaluate on the dataset the model was trained for")
        for image_id, (boxes, scores, cls) in zip(
                b.ids, decode(out, layout, b.metas, settings.conf, settings.iou, settings.max_det)):
            detections.extend(to_coco(image_id, boxes, scores, cls, ds.category_ids))
        if progress:
            progress(len(b.ids))
    wall = time.perf_counter() - t0
    facts = {"layout": str(layout), "provider": sess.provider, "threads": sess.threads,
             "graph_optimization": sess.graph_optimization, "batch": batch,
             **({"requests_in_flight": sess.requests, "requests_note": sess.streams_note}
                if isinstance(sess, Streaming) else {}),
             "input_hw": list(hw), "inference_s": round(infer_s, 4), "wall_s": round(wall, 4)}
    return detections, facts


def _instances(ds: Dataset, ids: Sequence[int]) -> dict[str, int]:
    """Ground-truth boxes (not crowd) per category id on ``ids``: how much each class's AP rests on."""
    wanted = {int(i) for i in ids}
    counts: dict[str, int] = {}
    for a in ds.coco.get("annotations", []):
        if int(a["image_id"]) in wanted and not a.get("iscrowd", 0):
            counts[str(int(a["category_id"]))] = counts.get(str(int(a["category_id"])), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))


def _has_fp16_qdq(model: Path) -> bool:
    """Whether a graph quantizes fp16 activations (QuantizeLinear with fp16 scales)."""
    import onnx
    from onnx import TensorProto

    m = onnx.load(str(model), load_external_data=False)
    fp16 = {i.name for i in m.graph.initializer if i.data_type == TensorProto.FLOAT16}
    return any(n.op_type == "QuantizeLinear" and len(n.input) > 1 and n.input[1] in fp16 for n in m.graph.node)


def shards_of(ids: Sequence[int], shards: int, batch: int = 1) -> list[list[int]]:
    """``ids`` cut into at most ``shards`` contiguous pieces, each a multiple of ``batch`` long (the
    last aside), so every image meets the same batch mates as in one pass."""
    ids = list(ids)
    batches = -(-len(ids) // batch)
    per = max(1, -(-batches // max(shards, 1))) * batch
    return [ids[i:i + per] for i in range(0, len(ids), per)]


def predict_sharded(model: Path, ds: Dataset, ids: Sequence[int], settings: EvalSettings, shards: int,
                    shard_map: Callable[..., list[Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`predict` over image shards through ``shard_map`` (e.g. Ray tasks), merged in id order.

    The detections are those of one pass (same images, same batch mates, same order).
    """
    t0 = time.perf_counter()
    parts = shard_map(predict, [(model, ds, shard, settings) for shard in shards_of(ids, shards, settings.batch)])
    detections = [d for dets, _ in parts for d in dets]
    facts = dict(parts[0][1]) if parts else {}
    facts.update(inference_s=round(sum(f["inference_s"] for _, f in parts), 4),
                 wall_s=round(time.perf_counter() - t0, 4), shards=len(parts))
    return detections, facts


def evaluate(model: Path, ds: Dataset, ids: Sequence[int], settings: EvalSettings,
             out: Path | None = None, progress: Callable[[int], None] | None = None,
             shards: int = 1, shard_map: Callable[..., list[Any]] | None = None,
             fallback: str | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on ``ids`` of ``ds``; write ``out`` (metrics JSON) when given.

    With ``shards`` > 1 and a ``shard_map`` (e.g. an executor's), the images are predicted in
    shards (:func:`predict_sharded`) and scored once: the same detections and metrics. With a
    ``fallback`` provider, a model the requested runtime cannot run is scored there instead (a
    warning in the metrics says so).

    Also writes ``<out stem>.ids.txt`` (the subset) and ``<out stem>.detections.json`` next to
    ``out``. Returns the metrics JSON as a dict: the named mAPs of
    :data:`quantsweep.evaluate.metrics.METRIC_KEYS` (``map50_95``, ...), ``ap_per_class``
    (category id -> AP50-95, for the collapse guard), ``num_images``,
    ``num_detections``, ``settings``, ``run`` (layout, provider, timings), ``model``
    (path, sha256) and ``dataset`` (annotations, ids file).
    """
    model = Path(model)
    warnings = []
    from quantsweep.runtimes import runtime_for, scorer

    able = runtime_for(model, settings.provider)
    if able is not scorer(settings.provider):  # e.g. only OpenVINO opens an IR
        warnings.append(f"{ModelFile.of(model).format.title}: scored by {able.title}, not the "
                        f"{settings.provider!r} provider")
        settings = replace(settings, provider=able.provider)

    def run(s: EvalSettings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if shards > 1 and shard_map is not None:
            return predict_sharded(model, ds, ids, s, shards, shard_map)
        return predict(model, ds, ids, s, progress)

    try:
        detections, facts = run(settings)
    except QuantsweepError as exc:  # the target runtime cannot run it: score it where it runs, and say so
        if fallback is None or fallback == settings.provider or "cannot" not in str(exc):
            raise
        warnings.append(f"scored on the {fallback!r} provider instead: {first_line(exc, 200)}")
        log.warning(warnings[-1])
        detections, facts = run(replace(settings, provider=fallback))
    t = time.perf_counter()
    metrics = coco_map(ds.coco, detections, ids)
    per_class = per_class_ap(ds.coco, detections, ids)
    facts["scoring_s"] = round(time.perf_counter() - t, 4)
    if facts.get("provider") == "CPUExecutionProvider" and _has_fp16_qdq(model):
        warnings.append("fp16 QDQ graph scored on ONNX Runtime's CPU provider: onnxruntime-gpu 1.24.4's CPU "
                        "kernels were measured to mis-compute such graphs on a CPU without AVX512-FP16 "
                        "(int8-trt-fp16 0.337 vs 0.509 on CUDA and on an AVX512-FP16 CPU with ORT 1.31); "
                        "check this number on the deployment runtime")
        log.warning(warnings[-1])
    facts["ms_per_image"] = round(1000 * facts["wall_s"] / max(len(ids), 1), 2)
    result: dict[str, Any] = {
        "what": "COCO bbox mAP (faster-coco-eval COCOeval) of a detector (ONNX or OpenVINO IR) on a fixed subset",
        **metrics,
        "ap_per_class": per_class,
        "instances_per_class": _instances(ds, ids),
        "num_images": len(ids),
        "num_detections": len(detections),
        "settings": asdict(settings),
        "run": facts,
        "model": {"path": str(model), "sha256": sha256_file(model)},
        "dataset": {"images": str(ds.images_dir), "annotations": str(ds.annotations)},
        "quantsweep_version": __version__,
        "warnings": warnings,
    }
    if out is not None:
        out = Path(out)
        ids_path = out.with_name(out.stem + ".ids.txt")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_ids_file(ids_path, ids)
        result["dataset"]["ids_file"] = str(ids_path)
        det_path = out.with_name(out.stem + ".detections.json")
        result["detections_file"] = str(det_path)
        atomic_write_json(det_path, detections)
        atomic_write_json(out, result)
    return result
