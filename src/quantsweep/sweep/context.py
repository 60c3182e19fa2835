"""What every stage of one sweep reads and none changes: :class:`Run`, and the rankings it computes once.

The sweep's *state* (the candidates made so far and their measurements) is the
:class:`~quantsweep.ledger.Ledger`, which stages read and return; :class:`Run` is what is fixed once
the target runtime and the image subsets are chosen: the run folder, the configuration, the inputs,
the executor, the build context, the scoring settings, the target and the subsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsweep.decide.split import SubsetPlan
from quantsweep.evaluate.run import EvalSettings
from quantsweep.schemes import BuildContext, Scheme
from quantsweep.sweep.config import SweepConfig
from quantsweep.sweep.executors import Executor
from quantsweep.sweep.inputs import Inputs
from quantsweep.sweep.store import StepStore

__all__ = ["Ranking", "Rankings", "Run"]


@dataclass(frozen=True)
class Run:
    """One sweep's fixed context.

    Attributes:
        store: the run folder's step store (``store.dir`` is the folder).
        cfg: the sweep's configuration.
        inp: the checked inputs (model, datasets).
        executor: where build and evaluation steps run.
        build: the candidates' build context (FP32 file, checkpoint, calibration images).
        settings: how candidates are scored (the target runtime's provider).
        target: the decision's runtime (None when no backend could time FP32).
        subsets: the search subset and the confirmation pool.
    """

    store: StepStore
    cfg: SweepConfig
    inp: Inputs
    executor: Executor
    build: BuildContext
    settings: EvalSettings
    target: str | None
    subsets: SubsetPlan

    @property
    def dir(self) -> Path:
        return self.store.dir

    @property
    def ids(self) -> list[int]:
        """The search subset's image ids (every candidate is scored on them)."""
        return list(self.subsets.search)

    @property
    def onnx_only(self) -> bool:
        """The model came without a PyTorch checkpoint (schemes take their ONNX-only fallback)."""
        return self.inp.pt is None

    def scheme(self, family: str, k: int = 0) -> Scheme:
        """The candidate of registry entry ``family`` with ``k`` nodes kept float."""
        from quantsweep.schemes import make_scheme

        scheme: Scheme = make_scheme(family, onnx_only=self.onnx_only, k=k)
        return scheme


@dataclass(frozen=True)
class Ranking:
    """One family's sensitivity result (``work/sensitivity-<family>.json``, or why there is none)."""

    family: str
    record: dict[str, Any]

    @property
    def nodes(self) -> list[dict[str, Any]] | None:
        """The ranked nodes, most damaging first; None when the ranking failed."""
        nodes = self.record.get("ranking")
        return list(nodes) if nodes is not None else None

    @property
    def error(self) -> str:
        return str(self.record.get("error", "not computed"))


Rankings = dict[str, Ranking]
