"""The sweep: baseline -> sensitivity -> candidates -> evaluation -> benchmark -> report.

The :class:`Runner` is the only writer of a run directory. Its layout::

    runs/<model>/<run-id>/
      config.yaml              resolved settings (written first; a resume must match it)
      env.json                 versions, CPU/GPU, providers, git hash (written first)
      manifest.json            every step's state, input hash and outputs (resume uses it)
      .lock                    held while a process writes this folder
      subset_ids.txt           evaluation image ids (first N ascending, or --image-ids)
      calib_ids.txt            calibration image ids (disjoint from the subset)
      sensitivity.json         per K-scheme ranking of nodes (see quantsweep.sensitivity)
      candidates/<name>.onnx   fp32 baseline and every candidate
      candidates/<name>.scheme.json
      candidates/logs/<name>.log   library output of each build
      results/<name>.metrics.json  COCO metrics (+ .ids.txt, .detections.json)
      results/<name>.<backend>.bench.json
      results/summary.csv|md|json, results/pareto.png, results/k_curve.png
      report.html              self-contained report (images embedded)

Every file is written atomically; a finished step is never redone or overwritten on resume; a
failed candidate or backend is a row with ``error`` set and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantsweep.config import SweepConfig
from quantsweep.errors import QuantsweepError
from quantsweep.files import atomic_write_json, atomic_write_text, sha256_file

__all__ = ["RunResult", "Runner", "run_sweep"]

log = logging.getLogger(__name__)
Event = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """What a sweep produced: its folder, the summary rows and the recommendation."""

    run_dir: Path
    rows: list[dict[str, Any]]
    recommendation: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _capture_fds(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (C libraries included) to ``log_path`` for a while."""
    import sys

    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        handler = logging.FileHandler(log_path)
        logging.getLogger().addHandler(handler)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            logging.getLogger().removeHandler(handler)
            handler.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Runner:
    """Owns one run directory: creates or resumes it, runs the steps, records their state."""

    def __init__(self, cfg: SweepConfig, run_dir: Path, on_event: Event | None = None) -> None:
        self.cfg = cfg
        self.dir = Path(run_dir)
        self.on_event = on_event or (lambda e: None)
        self.manifest_path = self.dir / "manifest.json"
        self.manifest: dict[str, Any] = {"steps": {}}
        self._lock_fd: int | None = None
        self.stage_seconds: dict[str, float] = {}
        self.inputs: Any = None  # the resolved model and datasets (sweep.Inputs), once checked

    # ---- folder, lock, manifest -------------------------------------------------------------
    @classmethod
    def create(cls, cfg: SweepConfig, model_name: str, on_event: Event | None = None) -> Runner:
        run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = cfg.out / model_name
        run_dir = base / run_id
        n = 1
        while run_dir.exists():
            n += 1
            run_dir = base / f"{run_id}-{n}"
        try:
            run_dir.mkdir(parents=True)
        except OSError as exc:
            raise QuantsweepError(f"cannot create run folder {run_dir} ({exc.strerror})",
                                  "choose a writable --out") from None
        return cls(cfg, run_dir, on_event)

    @classmethod
    def resume(cls, cfg: SweepConfig, run_dir: Path, on_event: Event | None = None) -> Runner:
        run_dir = Path(run_dir)
        stored = run_dir / "config.yaml"
        if not stored.is_file():
            raise QuantsweepError(f"{run_dir} is not a quantsweep run folder (no config.yaml)",
                                  "pass --resume with a folder printed by quantsweep run")
        old = SweepConfig.resolve(yaml_path=stored)
        if old.result_key() != cfg.result_key():
            diff = sorted(k for k, v in cfg.result_key().items() if old.result_key().get(k) != v)
            raise QuantsweepError(f"--resume {run_dir}: that run used different settings ({', '.join(diff)})",
                                  "resume with the same settings (or none: they are read from config.yaml), "
                                  "or start a new run")
        runner = cls(cfg, run_dir, on_event)
        if runner.manifest_path.is_file():
            runner.manifest = json.loads(runner.manifest_path.read_text())
        return runner

    def lock(self) -> None:
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
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

    def _save_manifest(self) -> None:
        atomic_write_json(self.manifest_path, self.manifest)

    def is_done(self, name: str, inputs: Any, outputs: list[Path]) -> bool:
        """Whether step ``name`` finished with these inputs and its outputs still exist."""
        rec = self.manifest["steps"].get(name)
        return bool(rec and rec["state"] == "done" and rec["inputs"] == _hash(inputs)
                    and all(p.exists() for p in outputs))

    def record(self, name: str, inputs: Any, outputs: list[Path], seconds: float,
               error: BaseException | None = None) -> None:
        """Record step ``name`` as done (or failed with ``error``) in the manifest."""
        key, secs = _hash(inputs), round(seconds, 2)
        if error is not None:
            self.manifest["steps"][name] = {"state": "failed", "inputs": key, "error": str(error)[:500],
                                            "seconds": secs}
            self._save_manifest()
            self.on_event({"event": "failed", "step": name, "error": str(error)[:300]})
            return
        import resource

        rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self.manifest["steps"][name] = {"state": "done", "inputs": key, "seconds": secs,
                                        "peak_rss_mb_so_far": rss_mb,
                                        "outputs": [str(p.relative_to(self.dir)) for p in outputs]}
        self._save_manifest()
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

    # ---- the sweep -----------------------------------------------------------------------------
    def run(self) -> RunResult:
        from quantsweep import sweep

        self.lock()
        try:
            return sweep.execute(self)
        finally:
            self.unlock()


def run_sweep(cfg: SweepConfig, resume: Path | None = None, on_event: Event | None = None) -> RunResult:
    """Run (or resume) a whole sweep; the Python API of ``quantsweep run``.

    Example:
        >>> result = run_sweep(SweepConfig())  # doctest: +SKIP  (the embedded demo)
        >>> result.recommendation["candidate"]  # doctest: +SKIP
    """
    from quantsweep.sweep import model_label, resolve_inputs

    inputs = resolve_inputs(cfg)  # bad inputs fail before a run folder is created or locked
    if resume is not None:
        runner = Runner.resume(cfg, resume, on_event)
    else:
        runner = Runner.create(cfg, model_label(cfg), on_event)
        atomic_write_text(runner.dir / "config.yaml", cfg.to_yaml())
        from quantsweep.env import collect_env

        atomic_write_json(runner.dir / "env.json", collect_env())
    runner.inputs = inputs
    runner.on_event({"event": "run_dir", "path": str(runner.dir)})
    return runner.run()


def file_hash(path: Path) -> str:
    return sha256_file(path)[:16] if path.exists() else "missing"
