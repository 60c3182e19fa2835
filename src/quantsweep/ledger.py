"""The sweep's state as typed records: each candidate, its measurements per runtime, and the ledger
that holds them.

A :class:`Candidate` is one model file the sweep made (or FP32): its scheme, its file, its build
record, its evaluation (scored on the search subset by the target runtime's provider) and its error.
A :class:`Measurement` is one candidate's benchmark on one runtime (its rows, label, evidence).
The :class:`Ledger` holds both; the stages read and extend it through its methods, and the
decision and the table read it back (:func:`quantsweep.results.summary_rows`). The records mirror
the run folder's files (``results/<name>.metrics.json``, ``results/<name>.<runtime>.bench.json``,
``candidates/<name>.scheme.json``), which stay the source of truth a resumed run reads back.

Example:
    >>> ledger = Ledger()
    >>> _ = ledger.add(Candidate("fp32", None, Path("fp32.onnx")))
    >>> ledger.fp32.name, ledger.fp32.ok
    ('fp32', False)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from quantsweep.files import ModelFile

__all__ = ["Candidate", "CandidateScheme", "Ledger", "Measurement", "SchemeTraitsView"]


class SchemeTraitsView(Protocol):
    """What the ledger's readers ask of a scheme's declared traits (``schemes.base.SchemeTraits``)."""

    @property
    def label(self) -> str: ...

    @property
    def purpose(self) -> str: ...

    @property
    def budget(self) -> str: ...


class CandidateScheme(Protocol):
    """What the ledger's readers ask of a candidate's scheme (``schemes.base.Scheme`` has it all)."""

    method: ClassVar[str]
    k: int
    head_policy: bool
    registry: str

    @property
    def name(self) -> str: ...

    @property
    def traits(self) -> SchemeTraitsView: ...


@dataclass
class Candidate:
    """One model the sweep made (or FP32, ``scheme`` None).

    Attributes:
        name: the candidate's name (its file's stem).
        scheme: the scheme that built it; None for FP32.
        model_path: its model file (``.onnx`` or OpenVINO ``.xml``); None once its build failed.
        error: why it has no result (build, evaluation or benchmark failure), else None.
        metrics: its evaluation record (``results/<name>.metrics.json``) once scored.
        reference: its re-score on ONNX Runtime CPU when it collapsed on another runtime
            (``{"provider", "delta"}``).
    """

    name: str
    scheme: CandidateScheme | None
    model_path: Path | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None

    @property
    def k(self) -> int:
        return 0 if self.scheme is None else self.scheme.k

    @property
    def ok(self) -> bool:
        """Built and scored, with no error."""
        return self.error is None and bool(self.metrics)

    @property
    def map50_95(self) -> float | None:
        return None if not self.metrics else self.metrics.get("map50_95")

    @property
    def provider(self) -> str | None:
        """The provider that scored it (``metrics.run.provider``)."""
        return ((self.metrics or {}).get("run") or {}).get("provider")

    def fail(self, why: str, keep_first: bool = False, drop_file: bool = False) -> None:
        """Mark it failed (``keep_first``: an earlier error stays); ``drop_file``: its file was never made."""
        if not (keep_first and self.error):
            self.error = why
        if drop_file:
            self.model_path = None

    @property
    def path(self) -> Path:
        """Its model file (asserting it has one)."""
        assert self.model_path is not None, f"{self.name} has no model file"
        return Path(self.model_path)

    def exists(self) -> bool:
        return self.model_path is not None and Path(self.model_path).exists()

    def size_mb(self) -> float | None:
        """Its file's size on disk (every file of the format), in MB; None when there is no file."""
        return round(self.size_bytes() / 1e6, 3) if self.exists() else None

    def size_bytes(self) -> int:
        return ModelFile.of(self.path).size_bytes()

    def build_record(self) -> dict[str, Any] | None:
        """Its build record (``candidates/<name>.scheme.json``), when there is one."""
        path = Path(self.model_path).with_suffix(".scheme.json") if self.model_path else None
        return json.loads(path.read_text()) if path is not None and path.is_file() else None

    def detections(self) -> list[dict[str, Any]]:
        """Its detections on the search subset (the evaluation's detections file)."""
        assert self.metrics, f"{self.name} is not scored"
        return list(json.loads(Path(self.metrics["detections_file"]).read_text()))

    def has_detections(self) -> bool:
        m = self.metrics or {}
        return self.error is None and bool(m.get("detections_file")) and Path(m["detections_file"]).is_file()


@dataclass(frozen=True)
class Measurement:
    """One candidate's benchmark on one runtime: the ``<name>.<runtime>.bench.json`` record (its rows,
    one per batch size, with the settings, node and environment)."""

    candidate: str
    runtime: str
    record: dict[str, Any]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.record.get("rows") or [])

    @property
    def first(self) -> dict[str, Any]:
        """Its first row (batch 1): the one the search and the decision read."""
        return (self.rows or [{}])[0]

    @property
    def evidence(self) -> dict[str, Any]:
        return dict(self.first.get("evidence") or {})


@dataclass
class Ledger:
    """The sweep's candidates (in the order they were made) and their measurements per runtime."""

    _candidates: dict[str, Candidate] = field(default_factory=dict)
    _measured: dict[str, dict[str, Measurement]] = field(default_factory=dict)  # runtime -> name -> it
    _runtime_errors: dict[str, str] = field(default_factory=dict)

    # candidates
    def add(self, candidate: Candidate) -> Candidate:
        """Record ``candidate`` (replacing one of the same name: a re-run step's newer record)."""
        self._candidates[candidate.name] = candidate
        return candidate

    def merge(self, other: Ledger) -> None:
        """Take ``other``'s candidates and measurements (a later stage's records)."""
        for c in other:
            self.add(c)
        for runtime, by_name in other._measured.items():
            self._measured.setdefault(runtime, {}).update(by_name)
        self._runtime_errors.update(other._runtime_errors)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(list(self._candidates.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._candidates

    def __getitem__(self, name: str) -> Candidate:
        return self._candidates[name]

    def get(self, name: str | None) -> Candidate | None:
        return self._candidates.get(name) if name is not None else None

    @property
    def fp32(self) -> Candidate | None:
        return self._candidates.get("fp32")

    def subset(self, names: list[str]) -> Ledger:
        """A ledger of only ``names`` (in that order), with their measurements."""
        out = Ledger()
        for n in names:
            if n in self._candidates:
                out.add(self._candidates[n])
        for runtime, by_name in self._measured.items():
            out._measured[runtime] = {n: m for n, m in by_name.items() if n in names}
        out._runtime_errors = dict(self._runtime_errors)
        return out

    def timeable(self) -> list[Candidate]:
        """The candidates with a file and no error, FP32 first when it has one (the order they are timed in)."""
        return [c for c in self if c.model_path is not None and c.error is None]

    # measurements
    def measure(self, m: Measurement) -> None:
        self._measured.setdefault(m.runtime, {})[m.candidate] = m
        self._runtime_errors.pop(m.runtime, None)

    def runtime_failed(self, runtime: str, error: str) -> None:
        """The runtime could not time the candidates at all (a row with its error for each)."""
        self._runtime_errors[runtime] = error
        self._measured.setdefault(runtime, {})

    def runtimes(self) -> list[str]:
        """Every runtime measured (or that failed), in the order first seen."""
        return list(self._measured)

    def runtime_error(self, runtime: str) -> str | None:
        return self._runtime_errors.get(runtime)

    def measured_on(self, runtime: str | None) -> bool:
        """Whether ``runtime`` timed the candidates (it ran, with no runtime-wide error)."""
        return runtime is not None and runtime in self._measured and runtime not in self._runtime_errors

    def measurement(self, runtime: str | None, name: str) -> Measurement | None:
        return self._measured.get(runtime or "", {}).get(name)

    def first_row(self, runtime: str | None, name: str) -> dict[str, Any]:
        """``name``'s batch-1 benchmark row on ``runtime`` (empty when it was not timed there)."""
        m = self.measurement(runtime, name)
        return m.first if m is not None else {}
