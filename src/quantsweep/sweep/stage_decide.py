"""Confirmation of the finalists on held-out images, then the decision and the report."""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantsweep.decide.confirm import ConfirmationRecord
from quantsweep.decide.decision import Decision
from quantsweep.evaluate.run import EvalSettings
from quantsweep.files import atomic_write_json
from quantsweep.ledger import Ledger
from quantsweep.results import Row
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.context import Run
from quantsweep.sweep.executors import Task
from quantsweep.sweep.stage_build import eval_inputs

__all__ = ['PairedScore', 'confirm', 'confirm_size', 'image_classes', 'report']

log = logging.getLogger(__name__)


def image_classes(ds: Any) -> dict[int, set[int]]:
    """Image id -> the categories of its non-crowd boxes (for a class-covering split)."""
    out: dict[int, set[int]] = {}
    for a in ds.coco.get("annotations", []):
        if not a.get("iscrowd", 0):
            out.setdefault(int(a["image_id"]), set()).add(int(a["category_id"]))
    return out


def confirm(run: Run, ledger: Ledger) -> ConfirmationRecord | None:
    """The finalists re-scored on the confirmation pool under a design fixed before the first look.

    Finalists: the fastest candidates on the target backend that beat FP32 there with a point
    ΔmAP within the budget on the search subset (:func:`quantsweep.decide.decision.finalists`).
    The design (:mod:`quantsweep.decide.sequential`: looks, α spent over them, the finalists tested
    by :func:`~quantsweep.decide.sequential.finalist_rule`: with one look in a fixed order declared
    here, safest first by their search-subset lower bound; with several, fastest first at α/finalists)
    is written to ``confirmation.json`` with every look's evidence. Each chunk of each model (FP32
    included) is a step, so an interrupted confirmation resumes.
    """
    r, cfg, inp, subsets, settings = run.store, run.cfg, run.inp, run.subsets, run.settings
    chunks = [list(c) for c in subsets.chunks]
    if not chunks:
        return None
    import numpy as np

    from quantsweep.decide.confirm import confirm_finalists, paired_evidence
    from quantsweep.decide.decision import finalists, pick_target, search_intervals
    from quantsweep.decide.sequential import alpha_split, finalist_rule, make_design
    from quantsweep.evaluate.bootstrap import bootstrap_map
    from quantsweep.evaluate.metrics import coco_map
    from quantsweep.evaluate.run import evaluate
    from quantsweep.results import summary_rows

    rows = summary_rows(ledger)
    target = pick_target(rows, run.target)
    chosen = finalists(rows, cfg.budget, target, cfg.finalists)
    looks = list(itertools.accumulate(map(len, chunks)))
    split = alpha_split(cfg.alpha)
    rule = finalist_rule(len(looks))
    design = make_design(split["speed"], looks, max(len(chosen), 1), cfg.alpha_spending, cfg.bootstrap, rule)
    order = [row.candidate for row in chosen]  # fastest first
    if rule == "fixed-sequence" and len(order) > 1:  # declared now, before the first look: safest first
        lows = search_intervals(ledger.subset(["fp32", *order]), inp.eval_ds, list(subsets.search),
                                cfg.bootstrap, cfg.seed)
        order.sort(key=lambda n: -(lows.get(n) or (-1.0, 0.0))[0])
    out_dir = r.dir / "results" / "confirm"

    scored: dict[tuple[str, str, int], list[dict[str, Any]]] = {}  # (provider, model, chunk) -> detections

    def detections(name: str, upto: int, how: Any) -> list[dict[str, Any]]:
        tag = "" if how == settings else f".{how.provider}"  # the target's steps keep their names
        todo = [i for i in range(upto) if (how.provider, name, i) not in scored]
        model_path = ledger[name].model_path
        assert model_path is not None, f"finalist {name} has no model file"
        metrics = {i: out_dir / f"{name}{tag}.c{i}.metrics.json" for i in todo}
        chains = [[Task(f"confirm{tag.replace('.', '-')}:{name}:{i}",
                        functools.partial(eval_inputs, model_path, chunks[i], str(how)),
                        [metrics[i]], evaluate, (model_path, inp.eval_ds, chunks[i], how, metrics[i], None, 1,
                                                 None, "cpu"))] for i in todo]
        failures: list[BaseException] = []
        run.executor.run_chains(r, chains, lambda ci, task, exc: failures.append(exc))
        if failures:
            raise failures[0]
        for i in todo:
            scored[how.provider, name, i] = json.loads(Path(json.loads(metrics[i].read_text())["detections_file"])
                                                       .read_text())
        return [d for i in range(upto) for d in scored[how.provider, name, i]]

    # each model's mAP and bootstrap on each prefix, computed once (the resampled multisets depend
    # only on the number of images and the seed, so FP32's are paired with every finalist's)
    cache: dict[tuple[str, str, int], tuple[float, np.ndarray]] = {}

    def map_and_resamples(name: str, ids: list[int], how: Any) -> tuple[float, np.ndarray]:
        if (how.provider, name, len(ids)) not in cache:
            dets = detections(name, looks.index(len(ids)) + 1, how)
            boot = bootstrap_map(inp.eval_ds.coco, {name: dets}, ids, cfg.bootstrap, cfg.seed)["map50_95"][name]
            cache[how.provider, name, len(ids)] = (coco_map(inp.eval_ds.coco, dets, ids)["map50_95"] or 0.0,
                                                   np.asarray(boot))
        return cache[how.provider, name, len(ids)]

    def scorer(how: Any) -> Any:
        """Paired evidence with FP32 scored the same way as the candidate (``how``)."""
        def score(name: str, ids: list[int]) -> tuple[float, float, float, float]:
            (base_map, base_boot) = map_and_resamples("fp32", ids, how)
            (cand_map, cand_boot) = map_and_resamples(name, ids, how)
            return paired_evidence(cand_map, base_map, cand_boot, base_boot)
        return score

    score = scorer(settings)

    results = confirm_finalists(order, chunks, score, cfg.budget, design)
    how = ("in the declared order (safest first: by the search subset's lower bound), each at the design's full α, "
           "stopping at the first that does not pass; the pick is the fastest that passed"
           if rule == "fixed-sequence" else "fastest first until one passes")
    record: dict[str, Any] = {"what": "finalists re-scored on held-out confirmation images (paired bootstrap vs FP32), "
                      f"{how}, under a design fixed before the first look", "order": order,
              "target": target, "budget_points": cfg.budget, "pool": len(subsets.confirm),
              "step": cfg.confirm_step, "design": design.to_dict(), "alpha_split": split,
              "split": {"mode": subsets.mode, "note": subsets.note, "search_images": len(subsets.search)},
              "finalists": [row.candidate for row in chosen], "results": [c.to_dict() for c in results]}
    four = confirm_size(r.dir, cfg, ledger, chunks, (score, scorer(_on_cpu(settings))))
    record["four_bit"] = four
    if four:
        record["alpha_split"] = alpha_split(cfg.alpha, len(four["finalists"]))
    atomic_write_json(r.dir / "confirmation.json", record)
    return ConfirmationRecord(record)


def _on_cpu(settings: EvalSettings) -> EvalSettings:
    import dataclasses

    return dataclasses.replace(settings, provider="cpu")


PairedScore = Callable[[str, list[int]], tuple[float, float, float, float]]


def confirm_size(run_dir: Path, cfg: SweepConfig, ledger: Ledger, chunks: list[list[int]],
                 scores: tuple[PairedScore, PairedScore | None]) -> dict[str, Any] | None:
    """The size search's picks (the ``size`` goal of :mod:`~quantsweep.sweep.stage_search`) re-scored on the same held-out images against their family's budget
    (``--w4-budget``; ``--w4a8-budget`` for W4A8), each family's pick its own verdict (W4A16 and W4A8 are
    different deployments: W4A8 runs on int8 kernels), smallest file first, under their own design (a
    separate question from the speed pick's; α split over the picks), so a size pick is a verdict too,
    not a search-subset estimate. A pick the target runtime could not score (a runtime that cannot load an INT4 file) is
    scored on ONNX Runtime CPU, and so is the FP32 it is paired with (``scores``: the target's paired score,
    then ONNX Runtime CPU's)."""
    from quantsweep.decide.confirm import confirm_finalists
    from quantsweep.decide.sequential import alpha_split, make_design

    path = run_dir / "search.json"
    if not path.is_file():
        return None
    placements = json.loads(path.read_text()).get("four_bit", {}).get("placements", [])
    picks = [p["best"] for p in placements if (c := ledger.get(p.get("best"))) is not None and not c.error]
    if not picks:
        return None
    budgets = {p["best"]: float(p.get("budget_points", cfg.w4_budget)) for p in placements if p.get("best") in picks}
    picks.sort(key=lambda name: ledger[name].size_bytes())
    looks = list(itertools.accumulate(map(len, chunks)))
    design = make_design(alpha_split(cfg.alpha, len(picks))["size"], looks, len(picks), cfg.alpha_spending,
                         cfg.bootstrap)
    fp32 = ledger.fp32
    fp32_by = fp32.provider if fp32 is not None else None
    score, score_cpu = scores

    def paired(name: str, ids: list[int]) -> tuple[float, float, float, float]:
        by = ledger[name].provider
        return (score_cpu if score_cpu is not None and by is not None and by != fp32_by else score)(name, ids)

    results = [{**c.to_dict(), "budget_points": budgets[c.candidate]}
               for c in confirm_finalists(picks, chunks, paired, budgets, design, every=True)]
    return {"what": "the 4-bit size picks re-scored on the held-out images against their family's 4-bit budget, "
                    "each its own verdict (smallest file first), under their own design at the size share of the "
                    "run's α (alpha_split)", "budget_points": cfg.w4_budget,
            "w4a8_budget_points": cfg.w4a8_budget, "design": design.to_dict(), "finalists": picks,
            "results": results}


def _say_where_the_time_goes(res: Path, decision: Decision) -> Decision:
    """A decision that stays on FP32 says what the profiles show: what the fastest candidate's
    convolutions save and what the rest of its graph costs (:mod:`quantsweep.report.profiles`)."""
    import dataclasses

    from quantsweep.report.profiles import read_profiles, where_it_goes

    if decision.candidate not in (None, "fp32"):
        return decision
    sentence = where_it_goes(read_profiles(res, decision.backend), decision)
    if sentence is None:
        return decision
    return dataclasses.replace(decision, reason=f"{decision.reason}. Where the time goes: {sentence}")


def report(run: Run, ledger: Ledger, confirmed: ConfirmationRecord | None) -> tuple[list[Row], Decision]:
    """Decide (:func:`quantsweep.decide.decision.conclude`), then write the table, plots and report:
    one manifest step over every result file it reads."""
    from quantsweep.data.coco import read_ids_file
    from quantsweep.decide.decision import Study, conclude
    from quantsweep.deploy.recommended import hand_back
    from quantsweep.files import file_hash
    from quantsweep.report.write import read_outputs, write_outputs

    r, cfg, inp, ids = run.store, run.cfg, run.inp, run.ids
    confirmation = confirmed.record if confirmed is not None else None
    sources = sorted((r.dir / "results").glob("*.metrics.json")) + sorted((r.dir / "results").glob("*.bench.json"))
    sources += sorted((r.dir / "results" / "reference").glob("*.metrics.json"))
    sources += sorted((r.dir / "results" / "confirm").glob("*.metrics.json"))
    sources += [p for p in (r.dir / "sensitivity.json", r.dir / "search.json", r.dir / "confirmation.json")
                if p.exists()]
    sources += sorted((r.dir / "results").glob("profile.*.json"))
    inputs = {"files": {str(p.relative_to(r.dir)): file_hash(p) for p in sources},
              "errors": {c.name: c.error for c in ledger},
              "decision": [cfg.budget, run.target, cfg.bootstrap, cfg.seed, cfg.alpha, cfg.alpha_spending],
              "changes": [cfg.gallery, cfg.gallery_conf]}
    shown = read_ids_file(r.dir / "confirm_ids.txt") if (r.dir / "confirm_ids.txt").is_file() else []
    example = inp.eval_ds.path((shown or ids)[0]).resolve() if (shown or ids) else None
    inputs["example_image"] = str(example)
    res = r.dir / "results"
    outputs = [res / "summary.csv", res / "summary.md", res / "summary.json", res / "pareto.png", res / "pareto.svg",
               res / "changes.json", r.dir / "report.html"]

    def write() -> tuple[list[Row], Decision]:
        rows, decision, verdict = conclude(Study(ledger, inp.eval_ds, ids, cfg.bootstrap, cfg.seed), cfg.budget,
                                           confirmation, run.target or cfg.target_backend, run.subsets.note)
        decision = _say_where_the_time_goes(r.dir / "results", decision)
        from quantsweep.sweep.stage_changes import what_changed

        changes = what_changed(run, decision, confirmation, ledger)
        scored_by = ledger.fp32.provider if ledger.fp32 is not None else None
        made = write_outputs(r.dir, cfg, rows, decision, verdict, len(ids), confirmation, scored_by, example, changes)
        hand_back(r.dir, decision, made[0], example)
        return made

    made = r.step("report", inputs, outputs, write)
    return made if made is not None else read_outputs(r.dir)  # None: finished earlier with the same inputs
