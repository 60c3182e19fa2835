"""Where the time goes: per-node profiles, on the target runtime, of FP32 and of every candidate that
can be the pick (the confirmation's finalists) or that the report must explain (the fastest candidate
there, when the run stays on FP32).

Each profile is a manifest step (``profile:<candidate>:<runtime>``) writing
``results/profile.<candidate>.<runtime>.json`` (:func:`quantsweep.bench.profile.profile_model`: the
runtime's own per-node counters, aggregated), run where the target is timed (``--bench-on``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from quantsweep.decide.confirm import ConfirmationRecord
from quantsweep.errors import first_line
from quantsweep.files import atomic_write_json
from quantsweep.ledger import Ledger
from quantsweep.sweep.context import Run

__all__ = ["profile_subjects", "profiles"]

log = logging.getLogger(__name__)


def profile_subjects(ledger: Ledger, target: str | None, finalists: list[str]) -> list[str]:
    """FP32, the ``finalists`` (one of them is the pick), and the fastest candidate the target runs accelerated
    (what the report compares with FP32 when no candidate is picked) — each once, with a file and no error."""
    rows = [(c.name, ledger.first_row(target, c.name)) for c in ledger if c.name != "fp32" and c.error is None]
    fastest = max(((n, b) for n, b in rows if b.get("label") == "accelerated" and b.get("speedup_vs_fp32")),
                  key=lambda nb: nb[1]["speedup_vs_fp32"], default=None)
    wanted = ["fp32", *finalists, *([fastest[0]] if fastest else [])]
    return [n for n in dict.fromkeys(wanted) if (c := ledger.get(n)) is not None and c.error is None and c.exists()]


def profiles(run: Run, ledger: Ledger, confirmed: ConfirmationRecord | None) -> dict[str, Path]:
    """Profile :func:`profile_subjects` on the target runtime (``--profile-runs`` calls each): the finalists
    are the confirmation's, else the search subset's (:func:`quantsweep.decide.decision.finalists`); returns
    candidate -> profile file; empty when the target has no per-node profile (a runtime other than
    OpenVINO and ONNX Runtime CPU) or ``--profile-runs 0``; a profile that fails is logged, not fatal."""
    from quantsweep.bench.profile import PROFILED, profile_model
    from quantsweep.files import file_hash

    r, cfg, target = run.store, run.cfg, run.target
    if not cfg.profile_runs or target not in PROFILED:
        return {}
    if confirmed is not None:
        names = confirmed.finalists
    else:  # no held-out verdict: the pick is among the search subset's finalists
        from quantsweep.decide.decision import finalists
        from quantsweep.results import summary_rows

        names = [row.candidate for row in finalists(summary_rows(ledger), cfg.budget, target, cfg.finalists)]
    made: dict[str, Path] = {}
    for name in profile_subjects(ledger, target, names):
        path = ledger[name].path
        out = r.dir / "results" / f"profile.{name}.{target}.json"

        def measure(path: Path = path, out: Path = out) -> None:
            result, node = run.executor.call(profile_model, (path, target, cfg.profile_runs),
                                             cfg.bench_resources(target))
            atomic_write_json(out, {**result, "model": path.name, "node": node})

        try:
            r.step(f"profile:{name}:{target}", {"model": file_hash(path), "runs": cfg.profile_runs}, [out], measure)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a profile is evidence, not a result: the run goes on
            log.warning("no profile of %s on %s: %s", name, target, first_line(exc))
            continue
        made[name] = out
    if made:
        fp32 = json.loads(made["fp32"].read_text()) if "fp32" in made else None
        if fp32:
            r.on_event({"event": "note", "message": f"profiled on {target}: {', '.join(made)} "
                        f"(FP32: {fp32['total_ms']:.2f} ms of node time, convolutions "
                        f"{100 * (fp32['conv_share'] or 0):.0f} %)"})
    return made
