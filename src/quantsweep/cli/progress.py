"""Watching a sweep: rich progress (overall bar with ETA, a line per step) and a JSON-lines log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["SweepProgress"]


class SweepProgress:
    """Renders the runner's events; ``on_event`` is what :func:`quantsweep.run_sweep` calls."""

    def __init__(self, quiet: bool = False, log_json: Path | None = None, run_dir: Path | None = None) -> None:
        self.run_dir = str(run_dir) if run_dir else None
        self._log: TextIO | None = open(log_json, "a") if log_json else None  # noqa: SIM115 - closed in close()
        self._tasks: dict[str, Any] = {}
        self._progress = None
        self._lines = False  # plain lines when stderr is not a terminal (CI logs, pipes)
        self._done = 0
        self._total = 0
        if not quiet and not sys.stderr.isatty():
            self._lines = True
        elif not quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                                      MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                                      TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._progress.start()

    def on_event(self, e: dict[str, Any]) -> None:
        if e["event"] == "run_dir":
            self.run_dir = e["path"]
        if self._log:
            self._log.write(json.dumps(e) + "\n")
            self._log.flush()
        if self._lines:
            self._line(e)
            return
        p = self._progress
        if p is None or e["event"] == "run_dir":
            return
        if e["event"] == "note":
            p.console.print(f"note: {e['message']}")
            return
        if e["event"] == "plan":
            self._tasks["__total__"] = p.add_task("sweep (all steps)", total=e["steps"])
            return
        step = e["step"]
        if e["event"] in ("done", "failed", "skip") and "__total__" in self._tasks:
            p.advance(self._tasks["__total__"])
        if e["event"] == "start":
            self._tasks[step] = p.add_task(step, total=None)
        elif e["event"] in ("done", "failed", "skip"):
            mark = {"done": "✓", "failed": "✗", "skip": "↷ (finished earlier)"}[e["event"]]
            extra = (f" {e.get('seconds', '')} s" if e["event"] == "done"
                     else f" {e.get('error', '')[:80]}" if e["event"] == "failed" else "")
            if step not in self._tasks:
                self._tasks[step] = p.add_task(step, total=1)
            p.update(self._tasks[step], description=f"{mark} {step}{extra}", total=1, completed=1)

    def _line(self, e: dict[str, Any]) -> None:
        if e["event"] == "plan":
            self._total = e["steps"]
        elif e["event"] in ("done", "failed", "skip"):
            self._done += 1
            detail = {"done": f"done in {e.get('seconds')} s", "skip": "finished earlier",
                      "failed": f"FAILED: {e.get('error', '')[:160]}"}[e["event"]]
            print(f"[{self._done}/{self._total}] {e['step']}: {detail}", file=sys.stderr, flush=True)
        elif e["event"] == "run_dir":
            print(f"run folder: {e['path']}", file=sys.stderr, flush=True)
        elif e["event"] == "note":
            print(f"note: {e['message']}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._log:
            self._log.close()
            self._log = None
