"""What the pick (and each finalist) changed against FP32: per class, per size, and the gallery.

Computed on the confirmation images each was scored on (FP32 scored on the same chunks), else on
the search subset, from the detections the evaluations kept; nothing is re-run. Written to
``results/changes.json`` (and ``summary.json``); the gallery's image pairs of the recommended
candidate (else the nearest one) to ``results/gallery/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsweep.ledger import Ledger
from quantsweep.results import Decision
from quantsweep.sweep.context import Run

__all__ = ["paired_detections", "what_changed"]

BETTER_SHOWN = 3  # of the gallery's pairs, up to this many where the candidate is better


def _load(metrics: Path) -> tuple[list[dict[str, Any]], list[int]] | None:
    if not metrics.is_file():
        return None
    m = json.loads(metrics.read_text())
    dets, ids_file = Path(m.get("detections_file", "")), Path(m.get("dataset", {}).get("ids_file", ""))
    if not dets.is_file() or not ids_file.is_file():
        return None
    return json.loads(dets.read_text()), [int(x) for x in ids_file.read_text().split()]


def paired_detections(results: Path, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int], str] | None:
    """FP32's and ``name``'s detections on the same images: the confirmation chunks both were scored
    on (``confirmation``), else the search subset (``search``); None when there is neither."""
    ref: list[dict[str, Any]] = []
    cand: list[dict[str, Any]] = []
    ids: list[int] = []
    i = 0
    while (c := _load(results / "confirm" / f"{name}.c{i}.metrics.json")) and \
            (f := _load(results / "confirm" / f"fp32.c{i}.metrics.json")):
        cand += c[0]
        ref += f[0]
        ids += c[1]
        i += 1
    if ids:
        return ref, cand, ids, "confirmation"
    c, f = _load(results / f"{name}.metrics.json"), _load(results / "fp32.metrics.json")
    if c is None or f is None:
        return None
    return f[0], c[0], c[1], "search"


def what_changed(run: Run, decision: Decision, confirmation: dict[str, Any] | None,
                 ledger: Ledger) -> dict[str, Any]:
    """``results/changes.json``: per subject (the pick, the finalists, else the nearest candidate)
    per-class and per-size Δ with paired intervals and the per-image changes; the gallery of the first
    subject drawn into ``results/gallery/``."""
    from quantsweep.evaluate.changes import class_damage, image_changes, size_damage
    from quantsweep.files import atomic_write_json
    from quantsweep.report.gallery import write_gallery

    cfg, ds = run.cfg, run.inp.eval_ds
    res = run.dir / "results"
    wanted = [decision.candidate, *((confirmation or {}).get("finalists") or []), decision.closest]
    subjects = [n for n in dict.fromkeys(wanted) if n and n != "fp32" and not ((c := ledger.get(n)) and c.error)]
    out: dict[str, Any] = {"what": "what each candidate changed against FP32 on the same images: AP50-95 per class "
                                   "(paired bootstrap interval where a class has enough boxes), AP per object size, "
                                   "and per image the boxes at the gallery's score threshold",
                           "resamples": cfg.bootstrap, "seed": cfg.seed, "gallery_conf": cfg.gallery_conf,
                           "candidates": {}, "gallery": None}
    for name in subjects:
        found = paired_detections(res, name)
        if found is None:
            continue
        ref, cand, ids, where = found
        per_image = image_changes(ds.coco, ref, cand, ids, cfg.gallery_conf)
        out["candidates"][name] = {
            "images": where, "num_images": len(ids),
            "classes": class_damage(ds.coco, ref, cand, ids, cfg.bootstrap, cfg.seed),
            "sizes": size_damage(ds.coco, ref, cand, ids),
            "image_verdicts": {v: sum(e["verdict"] == v for e in per_image) for v in ("worse", "better", "different",
                                                                                     "same")}}
        if out["gallery"] is None and cfg.gallery > 0:
            changed = [e for e in per_image if e["verdict"] in ("worse", "different")]
            better = [e for e in per_image if e["verdict"] == "better"]
            n_better = min(len(better), BETTER_SHOWN, cfg.gallery // 4 or 1)
            picks = changed[: cfg.gallery - n_better] + better[:n_better]
            shown = {e["image_id"] for e in picks}
            picks += [e for e in per_image if e["image_id"] not in shown][: cfg.gallery - len(picks)]  # the rest
            out["gallery"] = {"candidate": name, "images": where,
                              "pairs": write_gallery(res / "gallery", picks, ds.path, ds.coco, ref, cand, name,
                                                     cfg.gallery_conf)}
    atomic_write_json(res / "changes.json", out)
    return out
