"""The K search on the target runtime: the fewest float layers that keep the budget.

One search code serves both purposes a scheme can declare (``SchemeTraits.purpose``): *speed*
(the fastest placement within ``--budget``, every probe timed on the target) and *size* (the 4-bit
families: the fewest convs kept at 8 bits within their own budget, probes untimed). What differs
between them is a :class:`Goal`, declared once here; :class:`KSearch` runs the same loop for each.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsweep.errors import first_line
from quantsweep.files import atomic_write_json
from quantsweep.ledger import Candidate, Ledger, Measurement
from quantsweep.results import Row, summary_rows
from quantsweep.schemes import K_SCHEMES, Scheme
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.context import Ranking, Run
from quantsweep.sweep.search import (
    Probe,
    SearchResult,
    expected_low,
    half_damage_k,
    predicted_k,
    search_k,
    within_budget,
)
from quantsweep.sweep.stage_bench import bench_on_backend, write_bench
from quantsweep.sweep.stage_build import build_and_evaluate, sensitivities

__all__ = ['Goal', 'KSearch', 'SIZE', 'SPEED', 'search', 'size_search_wanted']

log = logging.getLogger(__name__)

Rule = Callable[[Probe], bool]  # whether a probe qualifies (quantsweep.sweep.search.within_budget)


@dataclass(frozen=True)
class Goal:
    """What a purpose asks of the search (``SchemeTraits.purpose``: ``speed`` or ``size``).

    Attributes:
        purpose: what it optimises; ``size`` searches only the schemes that declare it, ``speed`` every
            K-capable placement the target runs measurably faster than FP32.
        own_budget: each scheme is judged by the budget its traits name (``SweepConfig.budget_for``);
            else by ``--budget``.
        timed: each probe is timed on the target with FP32 (speed is what it buys).
        shared_cap: the placements share ``--max-evals`` (else each has its own).
        gives_up: a placement whose first two probes close less than a quarter of its gap stops
            ("no progress"). Not for size: 4-bit damage is spread over many convs, so the first few
            8-bit convs close little of the gap and many more close it (real YOLOv5n W4A8: K=2 closed a
            fifth, K=32 all of it).
        predicts_first_k: the first probe is the K the ranking predicts, not 1.
        hedges: a placement that qualifies at K=0 gets one sturdier probe for the confirmation.
    """

    purpose: str
    own_budget: bool
    timed: bool
    shared_cap: bool
    gives_up: bool
    predicts_first_k: bool
    hedges: bool


SPEED = Goal("speed", own_budget=False, timed=True, shared_cap=True, gives_up=True, predicts_first_k=False, hedges=True)
SIZE = Goal("size", own_budget=True, timed=False, shared_cap=False, gives_up=False, predicts_first_k=True, hedges=False)


def size_search_wanted(cfg: SweepConfig, ledger: Ledger, target: str | None, plan: list[Scheme]) -> tuple[bool, str]:
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
        m = ledger.measurement(target, name)
        evidence = m.evidence if m is not None else {}
        precisions = evidence.get("compute_layer_precisions") or {}
        ops = evidence.get("optimized_op_counts") or {}
        if any(str(p).lower() in ("i4", "u4") for p in precisions) or ops.get("MatMulNBits"):
            return True, f"the target runtime runs {name}'s compute layers in 4 bits"
    return False, ("not asked for, and the target runtime runs no 4-bit compute layer (4-bit weights are widened "
                   "to 8 bits or float before the multiply: fewer 8-bit convs buy file size, not speed)")


class KSearch:
    """The K search of one run over the candidates measured so far.

    It reads ``ledger`` (the candidates built, scored and timed) and makes probes: each built,
    scored on the search subset and (for speed) timed on the target interleaved with FP32, every
    step through the run's store so a resumed run replays the same trace. The probes it made are
    :attr:`made`; the record it writes is ``search.json``.

    Speed placements: the K-capable candidates (head policy on) that the target runs ``accelerated``
    and measurably faster than FP32 (:func:`~quantsweep.decide.decision.faster_than_fp32`: the
    speed-up's interval above 1), fastest first. A placement no faster at K=0 than a candidate already
    found within the budget is not searched (restoring float nodes only slows it). Otherwise,
    when its K=0 candidate misses the budget, :func:`quantsweep.sweep.search.search_k` restores
    the ranking's most damaging nodes to float. A probe qualifies when the lower bound *expected* on
    the confirmation pool keeps the budget (:func:`~quantsweep.sweep.search.within_budget`, shrink
    ``sqrt(search / pool)``). Placements are searched nearest-to-the-budget first (then fastest) and
    share the ``--max-evals`` cap; one whose first two probes close less than a quarter of its gap
    gives up ("no progress"), so a hopeless fast placement cannot starve one that is nearly within the
    budget. Size placements: the 4-bit K=0 candidates, each against its family's budget
    (:meth:`SweepConfig.budget_for`), with the :data:`SIZE` goal.
    """

    def __init__(self, run: Run, ledger: Ledger, plan: list[Scheme]) -> None:
        self.run, self.plan, self.target = run, plan, run.target
        self.view = Ledger()  # what the search reads: the ledger's records, then its own probes
        self.view.merge(ledger)
        self.made = Ledger()  # the probes it built
        pool = len(run.subsets.confirm)
        self.shrink = math.sqrt(len(run.ids) / pool) if pool else 1.0
        self.accept = within_budget(run.cfg.budget, self.shrink)
        self._boot: dict[str, list[float]] = {}
        # the K=0 candidates' rows on the target, as the table states them (before any probe)
        self.k0_rows = {row.candidate: row for row in summary_rows(self.view) if row.backend == self.target}

    # one probe: build, score, time, measure, record
    def measured(self, name: str, k: int) -> Probe:
        """``name``'s Δ against FP32 on the search subset, with its paired interval."""
        from quantsweep.evaluate.bootstrap import bootstrap_map, delta_interval

        cand, fp32 = self.view.get(name), self.view.fp32
        if cand is None or cand.error or not cand.metrics or fp32 is None or not fp32.metrics:
            return Probe(k, None, error=(cand.error if cand is not None else None) or "not evaluated")
        coco, ids, cfg = self.run.inp.eval_ds.coco, self.run.ids, self.run.cfg
        if "fp32" not in self._boot:
            self._boot["fp32"] = bootstrap_map(coco, {"fp32": fp32.detections()}, ids, cfg.bootstrap,
                                               cfg.seed)["map50_95"]["fp32"]
        boot = bootstrap_map(coco, {name: cand.detections()}, ids, cfg.bootstrap, cfg.seed)["map50_95"][name]
        low, high = delta_interval(boot, self._boot["fp32"])
        return Probe(k, round(cand.metrics["map50_95"] - fp32.metrics["map50_95"], 5), low, high)

    def time_on_target(self, cand: Candidate) -> None:
        """``cand`` timed on the target interleaved with FP32 (a shorter timing gives the ratio with its spread)."""
        from quantsweep.files import file_hash

        r, cfg, target, fp32 = self.run.store, self.run.cfg, self.target, self.view.fp32
        assert target is not None and fp32 is not None and fp32.model_path and cand.model_path
        out = r.dir / "results" / f"{cand.name}.{target}.bench.json"
        models = [("fp32", fp32.model_path), (cand.name, cand.model_path)]
        seconds = min(cfg.bench_seconds, 2.0)
        measure = functools.partial(self.write_timing, (target, seconds), models, out)
        try:
            r.step(f"bench:{target}:{cand.name}", {"models": {n: file_hash(p) for n, p in models},
                                                   "batches": list(cfg.batches), "seconds": seconds}, [out], measure)
            m = Measurement(cand.name, target, json.loads(out.read_text()))
            self.made.measure(m)
            self.view.measure(m)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a probe that cannot be timed is a row with its error
            cand.fail(f"benchmark on {target} failed: {first_line(exc)}", keep_first=True)

    def write_timing(self, where: tuple[str, float], models: list[tuple[str, Path]], out: Path) -> None:
        """The step behind :meth:`time_on_target`: ``models`` (FP32 first) timed on ``where`` = (runtime,
        seconds), the probe's share written to ``out``."""
        runtime, seconds = where
        res = bench_on_backend(self.run.executor, self.run.cfg, runtime, models, self.run.dir / "work" / "bench",
                               seconds)
        write_bench(out, res, models[-1][0])

    def speed(self, name: str) -> float | None:
        """``name``'s speed-up on the target when it is measurably faster than FP32 there, else None."""
        from quantsweep.decide.decision import faster_than_fp32

        b = self.view.first_row(self.target, name)
        row = Row(name, "", "", label=b.get("label"), speedup_vs_fp32=b.get("speedup_vs_fp32"),
                  speedup_ci95_low=b.get("speedup_ci95_low"))
        return row.speedup_vs_fp32 if faster_than_fp32(row) else None

    def trace_row(self, fam: str, name: str, p: Probe, kept: list[str], rule: Rule) -> dict[str, Any]:
        """The trace's line for probe ``p`` of candidate ``name`` (with what its steps took)."""
        b = self.view.first_row(self.target, name)
        cand = self.view.get(name)
        steps = self.run.store.seconds()
        low = expected_low(p, self.shrink) if p.low is not None else None  # no interval: nothing expected
        return {"placement": fam, "candidate": name, "k": p.k, "kept_float": kept, "delta": p.delta,
                "low": p.low, "high": p.high, "expected_low": None if low is None else round(low, 5),
                "qualifies": rule(p), "latency_ms": b.get("latency_p50_ms"),
                "speedup_vs_fp32": b.get("speedup_vs_fp32"), "speedup_ci95_low": b.get("speedup_ci95_low"),
                "speedup_ci95_high": b.get("speedup_ci95_high"), "label": b.get("label"), "error": p.error,
                "size_mb": cand.size_mb() if cand is not None else None,
                "seconds": round(sum(steps.get(f"{what}:{name}", 0.0) for what in ("build", "eval"))
                                 + steps.get(f"bench:{self.target}:{name}", 0.0), 2)}

    def ranking_of(self, s0: Scheme) -> Ranking:
        """The family's sensitivity ranking (computed once, through the executor)."""
        family = s0.registry
        rankings = sensitivities(self.run, [s0, self.run.scheme(family, k=1)])
        return rankings.get(family) or Ranking(family, {})

    def probe_k(self, ranking: Ranking, k: int, goal: Goal, rule: Rule, trace: list[dict[str, Any]]) -> Probe:
        """Build, score (and time on the target when the goal is timed) the family's candidate with K kept nodes."""
        scheme = self.run.scheme(ranking.family, k=k)
        nodes = ranking.nodes or []
        made = build_and_evaluate(self.run, [scheme], {ranking.family: ranking}, with_fp32=False)
        self.made.merge(made)
        self.view.merge(made)
        cand = self.view[scheme.name]
        if goal.timed and cand.error is None:
            self.time_on_target(cand)
        p = self.measured(scheme.name, k)
        trace.append(self.trace_row(ranking.family, scheme.name, p, [n["node"] for n in nodes[:k]], rule))
        return p

    def probe_or_k0(self, ranking: Ranking, p0: Probe, goal: Goal, rule: Rule, trace: list[dict[str, Any]],
                    k: int) -> Probe:
        """The search's ``evaluate(k)``: the measured K=0 probe, or a new probe at ``k``."""
        return p0 if k == 0 else self.probe_k(ranking, k, goal, rule, trace)

    # one placement: K=0, then the hedge or the search
    def hedge(self, s0: Scheme, item: dict[str, Any], trace: list[dict[str, Any]]) -> bool:
        """A placement that qualified at K=0 on the search subset gets one more probe: the K that keeps
        float the nodes carrying half of the ranking's measured damage. The search subset is small, so
        a K=0 that qualified there can still miss the budget on the held-out images; the hedge gives the
        confirmation a sturdier finalist at a small speed cost. Returns whether a probe was spent."""
        ranking = self.ranking_of(s0)
        if ranking.nodes is None:
            item["hedge"] = f"none: no sensitivity ranking ({ranking.error})"
            return False
        k_half, share = half_damage_k(ranking.record)
        if not k_half:
            item["hedge"] = ("none: no few nodes carry half of the measured damage "
                             f"(the {len([e for e in ranking.nodes if e.get('score') is not None])} probed remove "
                             f"{share:.0%})" if float(ranking.record.get("damage_full") or 0.0) > 0
                             else "none: no measured damage")
            return False
        p = self.probe_k(ranking, k_half, SPEED, self.accept, trace)
        item["hedge"] = {"k": k_half, "candidate": self.run.scheme(s0.registry, k=k_half).name,
                         "why": "the nodes that carry half of the measured quantization damage, kept float: a "
                                "sturdier finalist for the confirmation", "delta": p.delta,
                         "qualifies": self.accept(p)}
        return True

    def search_family(self, s0: Scheme, p0: Probe, item: dict[str, Any], cap: int, goal: Goal,
                      trace: list[dict[str, Any]]) -> SearchResult | None:
        """Search one K family beyond its measured K=0 probe ``p0``: its ranking, then the smallest K
        that the family's rule accepts within ``cap`` probes; None when there is no ranking."""
        budget = self.budget(goal, s0)
        rule = self.rule(goal, s0)
        ranking = self.ranking_of(s0)
        if ranking.nodes is None:
            item["stopped"] = f"not searched: no sensitivity ranking ({ranking.error})"
            return None

        first = predicted_k(ranking.record, p0, budget, self.shrink) if goal.predicts_first_k else 1
        if first > 1:
            item["first_k"] = {"k": first, "why": "the fewest ranked nodes whose measured damage, removed, would "
                                                  "bring K=0's expected lower bound within the budget"}
        evaluate = functools.partial(self.probe_or_k0, ranking, p0, goal, rule, trace)
        result = search_k(evaluate, rule, k_max=len(ranking.nodes), max_evals=cap + 1,
                          target_delta=-budget / 100 if goal.gives_up else None, first_k=first)
        item["stopped"] = result.stopped
        if result.best is not None:
            item["best"] = s0.name if result.best.k == 0 else self.run.scheme(s0.registry, k=result.best.k).name
        return result

    def budget(self, goal: Goal, s0: Scheme) -> float:
        """The budget that judges ``s0`` under ``goal``, in points."""
        return self.run.cfg.budget_for(s0.traits) if goal.own_budget else self.run.cfg.budget

    def rule(self, goal: Goal, s0: Scheme) -> Rule:
        """Whether a probe of ``s0``'s family qualifies under ``goal``: its budget kept by the lower bound
        expected on the confirmation pool."""
        return within_budget(self.budget(goal, s0), self.shrink)

    def placements(self, goal: Goal) -> list[Scheme]:
        """The K=0 candidates the goal searches, in the order it searches them."""
        k0 = [s for s in self.plan if s.k == 0 and s.registry in K_SCHEMES and s.head_policy]
        if goal.purpose == "size":
            return [s for s in k0 if s.traits.purpose == "size" and (c := self.view.get(s.name)) is not None and c.ok]
        from quantsweep.decide.decision import faster_than_fp32

        fast = [s for s in k0 if (row := self.k0_rows.get(s.name)) is not None and row.error is None
                and row.label == "accelerated" and faster_than_fp32(row)]
        # nearest to the budget first (its search is likeliest to pay), then fastest; a placement that
        # makes no progress gives up after two probes, so a hopeless fast one cannot eat the cap
        delta = {s.name: self.k0_rows[s.name].delta_map50_95 for s in fast}
        return sorted(fast, key=lambda s: (-(d if (d := delta[s.name]) is not None else -1.0), -(self.k0_speed(s))))

    def k0_speed(self, s0: Scheme) -> float:
        """``s0``'s speed-up over FP32 on the target, as the table's row states it (0 when untimed)."""
        row = self.k0_rows.get(s0.name)
        return float((row.speedup_vs_fp32 if row is not None else None) or 0.0)

    def search_goal(self, goal: Goal, out: dict[str, Any]) -> str | None:
        """Search every placement of ``goal`` into ``out`` (its ``placements`` and ``trace``); returns
        the fastest candidate found within the budget (speed) or None."""
        cfg = self.run.cfg
        best: tuple[str, float] | None = None  # the fastest candidate found within the budget so far
        left = cfg.max_evals
        for s0 in self.placements(goal):
            budget = self.budget(goal, s0)
            rule = self.rule(goal, s0)
            item: dict[str, Any] = {"placement": s0.registry, "k0": s0.name}
            item.update({"k0_speedup": self.k0_speed(s0)} if goal.timed else
                        {"budget_points": budget, "size_mb": row0.size_mb if (row0 := self.k0_rows.get(s0.name))
                         is not None else None})
            out["placements"].append(item)
            if goal.timed and best is not None and self.k0_speed(s0) <= best[1]:
                item["stopped"] = (f"not searched: no faster at K=0 ({self.k0_speed(s0):.2f}× FP32) than {best[0]} "
                                   f"({best[1]:.2f}×), already within the budget")
                continue
            p0 = self.measured(s0.name, 0)
            out["trace"].append(self.trace_row(s0.registry, s0.name, p0, [], rule))
            if rule(p0):
                item.update(stopped="qualified at K=0", best=s0.name)
                if goal.timed and (best is None or self.k0_speed(s0) > best[1]):
                    best = (s0.name, self.k0_speed(s0))
                if goal.hedges and left > 0 and cfg.confirm_images and self.hedge(s0, item, out["trace"]):
                    left -= 1
                continue
            if goal.shared_cap and left <= 0:
                item["stopped"] = "not searched: --max-evals reached"
                continue
            result = self.search_family(s0, p0, item, left, goal, out["trace"])
            if result is None:
                continue
            if goal.shared_cap:
                left -= result.evaluations - 1
            if goal.timed and result.best is not None:
                sp = self.speed(item["best"])
                if sp is not None and (best is None or sp > best[1]):
                    best = (item["best"], sp)
        out["evaluations"] = len([t for t in out["trace"] if t["k"] > 0])
        return best[0] if best else None

    def run_all(self) -> dict[str, Any]:
        """Both goals; returns the ``search.json`` record (the size search under ``four_bit``)."""
        cfg, target = self.run.cfg, self.target
        record: dict[str, Any] = {
            "what": "the K search on the target runtime: every probe built, scored on the search subset and timed",
            "target": target, "budget_points": cfg.budget, "search_images": len(self.run.ids),
            "confirm_pool": len(self.run.subsets.confirm),
            "rule": (f"a probe qualifies when ΔmAP - {self.shrink:.2f} × (ΔmAP - interval low) >= -{cfg.budget:g} "
                     "points: the lower bound expected on the confirmation pool"), "shrink": round(self.shrink, 4),
            "max_evals": cfg.max_evals, "placements": [], "trace": []}
        best = self.search_goal(SPEED, record)
        size: dict[str, Any] = {"budget_points": cfg.w4_budget, "w4a8_budget_points": cfg.w4a8_budget,
                                "placements": [], "trace": []}
        asked, why = size_search_wanted(cfg, self.view, target, self.plan)
        if asked:
            self.search_goal(SIZE, size)
            size["why"] = why
        else:
            size.update(skipped=why, evaluations=0,
                        how="quantsweep run --size (or --w4-budget / --w4a8-budget) searches each 4-bit family's "
                            "8-bit convs against its budget and confirms the smallest file on the held-out images")
        record["four_bit"] = size
        # seconds the search's steps took (from the manifest, so a resumed run reports the same)
        steps = self.run.store.seconds()
        spent = sum(t["seconds"] for t in record["trace"] if t["k"] > 0)
        spent += sum(steps.get(f"sensitivity:{p['placement']}", 0.0) for p in record["placements"]
                     if p.get("stopped", "").startswith(("smallest", "no K", "max_evals"))
                     or isinstance(p.get("hedge"), dict))
        record.update(evaluations=len([t for t in record["trace"] if t["k"] > 0]), best=best, seconds=round(spent, 2))
        return record


def search(run: Run, ledger: Ledger, plan: list[Scheme]) -> Ledger:
    """The K search on the target runtime (:class:`KSearch`); writes ``search.json`` and returns the probes
    it made (built, scored and, for speed, timed)."""
    fp32 = ledger.fp32
    if run.target is None or not ledger.measured_on(run.target) or fp32 is None or not fp32.metrics:
        return Ledger()
    ks = KSearch(run, ledger, plan)
    record = ks.run_all()
    atomic_write_json(run.dir / "search.json", record)
    run.store.on_event({"event": "note", "message": f"search on {run.target}: {record['evaluations']} probe(s) "
                        f"beyond K=0, {record['seconds']:.0f} s; best within the budget on the search subset: "
                        f"{record['best'] or 'none'}"})
    return ks.made
