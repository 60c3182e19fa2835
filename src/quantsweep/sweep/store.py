"""The step store: one run folder, its lock and its manifest of finished steps.

It knows nothing of sweeps, schemes or models: a *step* is a name, a JSON-able description of its
inputs, the files it writes and a function that writes them. A step is skipped when the
manifest says it finished with the same inputs (hashed) and its outputs still exist, so an
interrupted run resumes where it stopped and a finished result is never rewritten. Only the
store writes the manifest; executors (:mod:`quantsweep.sweep.executors`) ask it what to run and
tell it what finished.

The run folder a sweep writes through it is documented in :mod:`quantsweep.sweep.runner`.

Example:
    >>> store = StepStore.create(Path("runs/demo"))  # doctest: +SKIP
    >>> with store.locked():  # doctest: +SKIP
    ...     store.step("hello", {"v": 1}, [store.dir / "hello.txt"], lambda: write_hello())
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError
from quantsweep.files import atomic_write_json

__all__ = ["Event", "StepStore", "inputs_key"]

Event = Callable[[dict[str, Any]], None]


def inputs_key(inputs: Any) -> str:
    """The short hash the manifest keeps of a step's inputs (JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StepStore:
    """Owns one run folder: creates or reopens it, holds its lock, records step states.

    Events (``{"event": "start"|"done"|"skip"|"failed", "step": name, ...}``) go to ``on_event``.
    """

    def __init__(self, root: Path, on_event: Event | None = None) -> None:
        self.dir = Path(root)
        self.on_event: Event = on_event or (lambda e: None)
        self.manifest_path = self.dir / "manifest.json"
        self.manifest: dict[str, Any] = {"steps": {}}
        if self.manifest_path.is_file():
            self.manifest = json.loads(self.manifest_path.read_text())
        self._lock_fd: int | None = None

    @classmethod
    def create(cls, base: Path, on_event: Event | None = None) -> StepStore:
        """A new, empty folder ``base/<UTC timestamp>[-n]``.

        Raises:
            QuantsweepError: the folder cannot be created.
        """
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_dir, n = base / run_id, 1
        while run_dir.exists():
            n += 1
            run_dir = base / f"{run_id}-{n}"
        try:
            run_dir.mkdir(parents=True)
        except OSError as exc:
            raise QuantsweepError(f"cannot create run folder {run_dir} ({exc.strerror})",
                                  "choose a writable output folder") from None
        return cls(run_dir, on_event)

    # ---- lock ---------------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the folder's lock (``.lock``, with this pid) or refuse: one writer at a time."""
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise QuantsweepError(f"another quantsweep process is writing {self.dir}",
                                  "wait for it to finish, or use another run folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[StepStore]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    # ---- steps --------------------------------------------------------------------------------
    def is_done(self, name: str, inputs: Any, outputs: list[Path]) -> bool:
        """Whether step ``name`` finished with these inputs and its outputs still exist."""
        rec = self.manifest["steps"].get(name)
        return bool(rec and rec["state"] == "done" and rec["inputs"] == inputs_key(inputs)
                    and all(p.exists() for p in outputs))

    def record(self, name: str, inputs: Any, outputs: list[Path], seconds: float,
               error: BaseException | None = None) -> None:
        """Record step ``name`` as done (or failed with ``error``) in the manifest."""
        key, secs = inputs_key(inputs), round(seconds, 2)
        if error is not None:
            self.manifest["steps"][name] = {"state": "failed", "inputs": key, "error": str(error)[:500],
                                            "seconds": secs}
            atomic_write_json(self.manifest_path, self.manifest)
            self.on_event({"event": "failed", "step": name, "error": str(error)[:300]})
            return
        rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self.manifest["steps"][name] = {"state": "done", "inputs": key, "seconds": secs,
                                        "peak_rss_mb_so_far": rss_mb,
                                        "outputs": [str(p.relative_to(self.dir)) for p in outputs]}
        atomic_write_json(self.manifest_path, self.manifest)
        self.on_event({"event": "done", "step": name, "seconds": secs})

    def step(self, name: str, inputs: Any, outputs: list[Path], fn: Callable[[], Any]) -> Any:
        """Run ``fn`` unless the step is done with the same inputs and its outputs exist.

        Returns ``fn``'s result, or ``None`` when skipped. Exceptions propagate after the step
        is recorded as failed.
        """
        if self.is_done(name, inputs, outputs):
            self.on_event({"event": "skip", "step": name})
            return None
        self.on_event({"event": "start", "step": name})
        t0 = time.perf_counter()
        try:
            result = fn()
        except BaseException as exc:
            self.record(name, inputs, outputs, time.perf_counter() - t0, exc)
            raise
        self.record(name, inputs, outputs, time.perf_counter() - t0)
        return result

    def seconds(self) -> dict[str, float]:
        """Seconds each recorded step took (its last run)."""
        return {k: v.get("seconds", 0.0) for k, v in self.manifest["steps"].items()}
