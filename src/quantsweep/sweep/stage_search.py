"""The K search on the target runtime: the fewest float layers that keep the budget."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from quantsweep.errors import first_line
from quantsweep.files import atomic_write_json
from quantsweep.schemes import K_SCHEMES
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.executors import Executor
from quantsweep.sweep.inputs import Inputs
from quantsweep.sweep.stage_bench import bench_on_backend, write_bench
from quantsweep.sweep.stage_build import build_and_evaluate, sensitivities
from quantsweep.sweep.store import StepStore

__all__ = ['search', 'size_search_wanted']

log = logging.getLogger(__name__)


def size_search_wanted(cfg: SweepConfig, target_bench: dict[str, Any], plan: list[Any]) -> tuple[bool, str]:
    """Whether the run searches the 4-bit families for size, and why (or why not).

    Asked for (``--size``, or a 4-bit budget given on the command line: ``cfg.size``), or the target
    runtime executes a 4-bit candidate's compute layers in 4 bits (its benchmark evidence: OpenVINO's
    runtime precision ``i4``/``u4`` on convolutions or matmuls, ONNX Runtime's ``MatMulNBits``): only
    there can fewer 8-bit convs also mean speed. Elsewhere 4-bit weights are widened to 8 bits or to
    float before any multiply, so the search would buy file size only and is not run by default."""
    if cfg.size:
        return True, "asked for (--size or a 4-bit budget)"
    four = {s.name for s in plan if s.k == 0 and s.traits.purpose == "size"}
    for name in sorted(four):
        rows = (target_bench.get(name) or {}).get("rows") or []
        evidence = (rows[0].get("evidence") or {}) if rows else {}
        precisions = evidence.get("compute_layer_precisions") or {}
        ops = evidence.get("optimized_op_counts") or {}
        if any(str(p).lower() in ("i4", "u4") for p in precisions) or ops.get("MatMulNBits"):
            return True, f"the target runtime runs {name}'s compute layers in 4 bits"
    return False, ("not asked for, and the target runtime runs no 4-bit compute layer (4-bit weights are widened "
                   "to 8 bits or float before the multiply: fewer 8-bit convs buy file size, not speed)")


def search(r: StepStore, cfg: SweepConfig, plan: list[Any], ctx: Any, inp: Inputs, ids: list[int],
            built: dict[str, Any], benches: dict[str, dict[str, Any]], executor: Executor, pool: int,
            target: str | None, settings: Any) -> None:
    """The K search on the target runtime; probes join ``built`` and ``benches``; writes ``search.json``.

    Placements: the K-capable candidates (head policy on) that the target runs ``accelerated``
    and measurably faster than FP32 (:func:`~quantsweep.decide.decision.faster_than_fp32`: the
    speed-up's interval above 1), fastest first. A placement no faster at K=0 than a candidate already
    found within the budget is not searched (restoring float nodes only slows it). Otherwise,
    when its K=0 candidate misses the budget, :func:`quantsweep.sweep.search.search_k` restores
    the ranking's most damaging nodes to float, each probe built, scored on the search subset and
    timed on the target interleaved with FP32 (all steps, so a resumed run replays the same trace).
    A probe qualifies when the lower bound *expected* on the confirmation pool keeps the budget
    (:func:`~quantsweep.sweep.search.within_budget`, shrink ``sqrt(search / pool)``). Placements
    are searched nearest-to-the-budget first (then fastest) and share the ``--max-evals`` cap; one
    whose first two probes close less than a quarter of its gap gives up ("no progress"), so a
    hopeless fast placement cannot starve one that is nearly within the budget.
    """
    import math

    from quantsweep.decide.decision import faster_than_fp32
    from quantsweep.evaluate.bootstrap import bootstrap_map, delta_interval
    from quantsweep.files import ModelFile, file_hash
    from quantsweep.results import Row, summary_rows
    from quantsweep.schemes import make_scheme
    from quantsweep.sweep.search import Probe, expected_low, half_damage_k, predicted_k, search_k, within_budget

    rows = summary_rows(built, benches)
    fp32_metrics = built.get("fp32", {}).get("metrics")
    if target is None or not isinstance(benches.get(target), dict) or "error" in benches[target] or not fp32_metrics:
        return
    on_target = {row.candidate: row for row in rows if row.backend == target}
    shrink = math.sqrt(len(ids) / pool) if pool else 1.0
    accept = within_budget(cfg.budget, shrink)
    res_dir = r.dir / "results"
    boot: dict[str, list[float]] = {}

    def dets(name: str) -> list[dict[str, Any]]:
        return json.loads(Path(built[name]["metrics"]["detections_file"]).read_text())

    def measured(name: str, k: int) -> Probe:
        entry = built.get(name) or {}
        if entry.get("error") or not entry.get("metrics"):
            return Probe(k, None, error=entry.get("error") or "not evaluated")
        if "fp32" not in boot:
            boot["fp32"] = bootstrap_map(inp.eval_ds.coco, {"fp32": dets("fp32")}, ids, cfg.bootstrap,
                                         cfg.seed)["map50_95"]["fp32"]
        cand = bootstrap_map(inp.eval_ds.coco, {name: dets(name)}, ids, cfg.bootstrap, cfg.seed)["map50_95"][name]
        low, high = delta_interval(cand, boot["fp32"])
        return Probe(k, round(entry["metrics"]["map50_95"] - fp32_metrics["map50_95"], 5), low, high)

    def time_on_target(name: str) -> None:
        out = res_dir / f"{name}.{target}.bench.json"
        models = [("fp32", built["fp32"]["onnx"]), (name, built[name]["onnx"])]

        def measure() -> None:  # two models only: a shorter timing gives the ratio with its spread
            res = bench_on_backend(executor, cfg, target, models, r.dir / "work" / "bench", min(cfg.bench_seconds, 2.0))
            write_bench(out, res, name)

        try:
            r.step(f"bench:{target}:{name}", {"models": {n: file_hash(p) for n, p in models},
                                              "batches": list(cfg.batches), "seconds": min(cfg.bench_seconds, 2.0)},
                   [out], measure)
            benches[target][name] = json.loads(out.read_text())
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a probe that cannot be timed is a row with its error
            built[name]["error"] = built[name].get("error") or f"benchmark on {target} failed: {first_line(exc)}"

    def speed(name: str) -> float | None:
        """``name``'s speed-up on the target when it is measurably faster than FP32 there, else None."""
        b = ((benches[target].get(name) or {}).get("rows") or [{}])[0]
        row = Row(name, "", "", label=b.get("label"), speedup_vs_fp32=b.get("speedup_vs_fp32"),
                  speedup_ci95_low=b.get("speedup_ci95_low"))
        return row.speedup_vs_fp32 if faster_than_fp32(row) else None

    trace: list[dict[str, Any]] = []

    def size_mb(name: str) -> float | None:
        path = (built.get(name) or {}).get("onnx")
        return round(ModelFile.of(path).size_bytes() / 1e6, 3) if path and Path(path).exists() else None

    def trace_row(fam: str, name: str, p: Probe, kept: list[str], into: list[dict[str, Any]] | None = None,
                  rule: Any = None) -> None:
        b = ((benches[target].get(name) or {}).get("rows") or [{}])[0]
        steps = r.seconds()
        low = expected_low(p, shrink) if p.low is not None else None  # no interval: nothing expected
        (trace if into is None else into).append({"placement": fam, "candidate": name, "k": p.k, "kept_float": kept, "delta": p.delta,
                      "low": p.low, "high": p.high, "expected_low": None if low is None else round(low, 5),
                      "qualifies": (rule or accept)(p), "latency_ms": b.get("latency_p50_ms"),
                      "speedup_vs_fp32": b.get("speedup_vs_fp32"), "speedup_ci95_low": b.get("speedup_ci95_low"),
                      "speedup_ci95_high": b.get("speedup_ci95_high"), "label": b.get("label"), "error": p.error,
                      "size_mb": size_mb(name),
                      "seconds": round(sum(steps.get(f"{what}:{name}", 0.0) for what in ("build", "eval"))
                                       + steps.get(f"bench:{target}:{name}", 0.0), 2)})

    def ranking_of(s0: Any) -> dict[str, Any]:
        """The family's sensitivity result (computed once, through the executor): ``ranking`` in it, or
        ``error``."""
        sens = sensitivities(r, cfg, [s0, make_scheme(s0.registry, onnx_only=inp.pt is None, k=1)], ctx,
                             executor).get(s0.registry, {})
        return sens if "ranking" in sens else {"error": sens.get("error", "not computed")}

    def probe_k(fam: str, ranking: list[dict[str, Any]], k: int, rule: Any,
                into: list[dict[str, Any]] | None = None, timed: bool = True) -> Probe:
        """Build, score (and time on the target when ``timed``) the family's candidate with K kept nodes."""
        scheme = make_scheme(fam, onnx_only=inp.pt is None, k=k)
        built.update(build_and_evaluate(r, cfg, [scheme], ctx, inp, ids, {fam: {"ranking": ranking}},
                                         executor, settings, with_fp32=False))
        if timed and built[scheme.name].get("error") is None:
            time_on_target(scheme.name)
        p = measured(scheme.name, k)
        trace_row(fam, scheme.name, p, [n["node"] for n in ranking[:k]], into, rule)
        return p

    def hedge(s0: Any, item: dict[str, Any]) -> bool:
        """A placement that qualified at K=0 on the search subset gets one more probe: the K that keeps
        float the nodes carrying half of the ranking's measured damage. The search subset is small, so
        a K=0 that qualified there can still miss the budget on the held-out images; the hedge gives the
        confirmation a sturdier finalist at a small speed cost. Returns whether a probe was spent."""
        sens = ranking_of(s0)
        if "ranking" not in sens:
            item["hedge"] = f"none: no sensitivity ranking ({sens['error']})"
            return False
        ranking = sens["ranking"]
        k_half, share = half_damage_k(sens)
        if not k_half:
            item["hedge"] = ("none: no few nodes carry half of the measured damage "
                             f"(the {len([e for e in ranking if e.get('score') is not None])} probed remove "
                             f"{share:.0%})" if float(sens.get("damage_full") or 0.0) > 0 else "none: no measured damage")
            return False
        p = probe_k(s0.registry, ranking, k_half, accept)
        item["hedge"] = {"k": k_half, "candidate": make_scheme(s0.registry, onnx_only=inp.pt is None, k=k_half).name,
                         "why": "the nodes that carry half of the measured quantization damage, kept float: a "
                                "sturdier finalist for the confirmation", "delta": p.delta, "qualifies": accept(p)}
        return True

    def search_family(s0: Any, p0: Probe, item: dict[str, Any], rule: Any, target_delta: float | None, cap: int,
                      into: list[dict[str, Any]] | None = None, timed: bool = True,
                      rule_points: float | None = None) -> Any:
        """Search one K family beyond its measured K=0 probe ``p0``: its ranking, then the smallest K
        that ``rule`` accepts within ``cap`` probes (each timed on the target when ``timed``); None when
        there is no ranking. With ``rule_points`` (the budget), the first probe is the K the ranking
        predicts (:func:`~quantsweep.sweep.search.predicted_k`) instead of 1."""
        fam = s0.registry
        sens = ranking_of(s0)
        if "ranking" not in sens:
            item["stopped"] = f"not searched: no sensitivity ranking ({sens['error']})"
            return None
        ranking = sens["ranking"]

        def evaluate(k: int) -> Probe:
            return p0 if k == 0 else probe_k(fam, ranking, k, rule, into, timed)

        first = predicted_k(sens, p0, rule_points, shrink) if rule_points is not None else 1
        if first > 1:
            item["first_k"] = {"k": first, "why": "the fewest ranked nodes whose measured damage, removed, would "
                                                  "bring K=0's expected lower bound within the budget"}
        result = search_k(evaluate, rule, k_max=len(ranking), max_evals=cap + 1, target_delta=target_delta,
                          first_k=first)
        item["stopped"] = result.stopped
        if result.best is not None:
            item["best"] = (s0.name if result.best.k == 0
                            else make_scheme(fam, onnx_only=inp.pt is None, k=result.best.k).name)
        return result

    def four_bit_search() -> dict[str, Any]:
        """The 4-bit families' purpose is size: the fewest convs kept at 8 bits that keep ``--w4-budget``
        (``--w4a8-budget`` for W4A8), with the same probes and rule as the speed search, on the search subset. No speed-up is required and
        probes are not timed (a runtime that cannot load an INT4 file scores them on ONNX Runtime)."""
        out: dict[str, Any] = {"budget_points": cfg.w4_budget, "w4a8_budget_points": cfg.w4a8_budget,
                               "placements": [], "trace": []}
        for s0 in plan:
            entry = built.get(s0.name) or {}
            if not (s0.k == 0 and s0.registry in K_SCHEMES and s0.traits.purpose == "size"
                    and s0.head_policy and entry.get("metrics") and not entry.get("error")):
                continue
            row0 = on_target.get(s0.name)
            budget = cfg.budget_for(s0.traits)
            rule = within_budget(budget, shrink)
            item: dict[str, Any] = {"placement": s0.registry, "k0": s0.name, "budget_points": budget,
                                    "size_mb": row0.size_mb if row0 is not None else None}
            out["placements"].append(item)
            p0 = measured(s0.name, 0)
            trace_row(s0.registry, s0.name, p0, [], out["trace"], rule)
            if rule(p0):
                item.update(stopped="qualified at K=0", best=s0.name)
                continue
            # no "no progress" give-up here: 4-bit damage is spread over many convs, so the first few
            # 8-bit convs close little of the gap and many more close it (real YOLOv5n W4A8: K=2 closed
            # a fifth, K=32 all of it); the probes are untimed, and --max-evals caps them
            search_family(s0, p0, item, rule, None, cfg.max_evals, out["trace"], timed=False,
                          rule_points=budget)
        out["evaluations"] = len([t for t in out["trace"] if t["k"] > 0])
        return out

    placements = []
    for s0 in plan:
        row0 = on_target.get(s0.name)
        if (s0.k == 0 and s0.registry in K_SCHEMES and s0.head_policy and row0 is not None
                and row0.error is None and row0.label == "accelerated" and faster_than_fp32(row0)):
            placements.append((s0, row0))
    # nearest to the budget first (its search is likeliest to pay), then fastest; a placement that
    # makes no progress gives up after two probes, so a hopeless fast one cannot eat the cap
    placements.sort(key=lambda sr: (-(sr[1].delta_map50_95 if sr[1].delta_map50_95 is not None else -1.0),
                                    -(sr[1].speedup_vs_fp32 or 0.0)))
    record: dict[str, Any] = {
        "what": "the K search on the target runtime: every probe built, scored on the search subset and timed",
        "target": target, "budget_points": cfg.budget, "search_images": len(ids), "confirm_pool": pool,
        "rule": (f"a probe qualifies when ΔmAP - {shrink:.2f} × (ΔmAP - interval low) >= -{cfg.budget:g} points: "
                 "the lower bound expected on the confirmation pool"), "shrink": round(shrink, 4),
        "max_evals": cfg.max_evals, "placements": [], "trace": trace}
    best: tuple[str, float] | None = None  # the fastest candidate found within the budget so far
    left = cfg.max_evals
    for s0, row0 in placements:
        fam, k0_speed = s0.registry, row0.speedup_vs_fp32 or 0.0
        item: dict[str, Any] = {"placement": fam, "k0": s0.name, "k0_speedup": k0_speed}
        record["placements"].append(item)
        if best is not None and k0_speed <= best[1]:
            item["stopped"] = (f"not searched: no faster at K=0 ({k0_speed:.2f}× FP32) than {best[0]} "
                               f"({best[1]:.2f}×), already within the budget")
            continue
        p0 = measured(s0.name, 0)
        trace_row(fam, s0.name, p0, [])
        if accept(p0):
            item.update(stopped="qualified at K=0", best=s0.name)
            best = (s0.name, k0_speed) if best is None or k0_speed > best[1] else best
            if left > 0 and cfg.confirm_images and hedge(s0, item):
                left -= 1
            continue
        if left <= 0:
            item["stopped"] = "not searched: --max-evals reached"
            continue
        result = search_family(s0, p0, item, accept, -cfg.budget / 100, left)
        if result is None:
            continue
        left -= result.evaluations - 1
        if result.best is not None:
            sp = speed(item["best"])
            if sp is not None and (best is None or sp > best[1]):
                best = (item["best"], sp)
    asked, why = size_search_wanted(cfg, benches.get(target) or {}, plan)
    record["four_bit"] = four_bit_search() if asked else {
        "skipped": why, "budget_points": cfg.w4_budget, "w4a8_budget_points": cfg.w4a8_budget,
        "placements": [], "trace": [], "evaluations": 0,
        "how": "quantsweep run --size (or --w4-budget / --w4a8-budget) searches each 4-bit family's 8-bit convs "
               "against its budget and confirms the smallest file on the held-out images"}
    if asked:
        record["four_bit"]["why"] = why
    # seconds the search's steps took (from the manifest, so a resumed run reports the same)
    steps = r.seconds()
    spent = sum(t["seconds"] for t in trace if t["k"] > 0)
    spent += sum(steps.get(f"sensitivity:{p['placement']}", 0.0) for p in record["placements"]
                 if p.get("stopped", "").startswith(("smallest", "no K", "max_evals")) or isinstance(p.get("hedge"), dict))
    record.update(evaluations=len([t for t in trace if t["k"] > 0]), best=best[0] if best else None,
                  seconds=round(spent, 2))
    atomic_write_json(r.dir / "search.json", record)
    r.on_event({"event": "note", "message": f"search on {target}: {record['evaluations']} probe(s) beyond K=0, "
                f"{record['seconds']:.0f} s; best within the budget on the search subset: {record['best'] or 'none'}"})
