"""Executors: run chains of steps through a :class:`~quantsweep.sweep.store.StepStore`.

A chain is one candidate's ``build`` then ``eval``: its steps run in order and it stops at its
first failure; chains are independent. Every executor implements :class:`Executor`:

- :class:`LocalExecutor` runs the steps in this process, in order;
- :class:`PoolExecutor` runs them in ``jobs`` spawned worker processes (each with its own log
  capture and ``QUANTSWEEP_THREADS`` = its share of the cores) while this process alone writes
  the manifest. ``jobs`` is capped by the cores and by the memory available (about
  :data:`JOB_MEMORY_GB` per job, the measured peak of a build or an evaluation of a small
  detector plus headroom).

- :class:`RayExecutor` runs them as Ray tasks on a cluster (``--executor ray``), each asking for
  its share of CPUs and :data:`JOB_MEMORY_GB` of memory; a task whose worker dies is retried
  (Ray's ``max_retries``), one that raises is its candidate's failed row. Workers write the step's
  files into the run folder, which must be on a path every node sees (a local cluster, or a
  shared filesystem); the driver alone writes the manifest.

Every executor also offers ``shard_map(func, arglists)`` (one candidate's evaluation split over
image shards: in order here, as parallel tasks on Ray) and ``call(func, args, resources)`` (a
function run where ``resources`` are: the benchmarks bound to a node with ``--bench-on``).

Choose one with :func:`quantsweep.sweep.choose.make_executor`.

Example:
    >>> make_executor(2).run_chains(store, [[Task("build:x", lambda: {}, [out], materialize,
    ...                                           (scheme, ctx, d))]], on_fail=print)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quantsweep.files import capture_output
from quantsweep.sweep.store import StepStore

__all__ = ["JOB_MEMORY_GB", "Backend", "Executor", "LocalExecutor", "PoolExecutor", "Task", "effective_jobs",
           "drive", "node_facts", "worker_call"]

JOB_MEMORY_GB = 2.5


@dataclass(frozen=True)
class Task:
    """One manifest step: ``func(*args)`` (module-level, picklable) writing ``outputs``.

    ``inputs`` is called just before the step is checked or run (it may hash files an earlier
    step of the chain wrote); ``log`` captures the step's stdout/stderr when given.
    """

    step: str
    inputs: Callable[[], Any]
    outputs: list[Path]
    func: Callable[..., Any]
    args: tuple[Any, ...]
    log: Path | None = None


def _available_memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        return None
    return None


def effective_jobs(requested: int) -> tuple[int, str | None]:
    """``requested`` capped by cores and available memory; the reason when it was capped."""
    cores = os.cpu_count() or 1
    mem = _available_memory_gb()
    by_mem = max(1, int(mem // JOB_MEMORY_GB)) if mem is not None else requested
    jobs = max(1, min(requested, cores, by_mem))
    if jobs == requested:
        return jobs, None
    return jobs, (f"--jobs {requested} lowered to {jobs}: {cores} cores, "
                  f"{mem:.1f} GB memory available (~{JOB_MEMORY_GB} GB per job)" if mem is not None
                  else f"--jobs {requested} lowered to {jobs}: {cores} cores")


def _call(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None) -> None:
    if log is None:
        func(*args)
        return
    with capture_output(log):
        func(*args)


def _worker_init(threads: int, parent: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool
    os.environ["QUANTSWEEP_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)

    def watch() -> None:  # a worker never outlives a killed sweep
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_call(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None) -> None:
    try:
        _call(func, args, log)
    except Exception as exc:  # custom exception classes may not unpickle in the parent
        raise RuntimeError(str(exc) or type(exc).__name__) from None


OnFail = Callable[[int, Task, BaseException], None]


def local_map(func: Callable[..., Any], arglists: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``[func(*args) for args in arglists]``, in this process, in order."""
    return [func(*args) for args in arglists]


def node_facts() -> dict[str, Any]:
    """Where this code runs: hostname, and the Ray node id when inside a Ray worker."""
    import socket

    facts: dict[str, Any] = {"hostname": socket.gethostname()}
    try:
        import ray

        if ray.is_initialized():
            facts["ray_node_id"] = ray.get_runtime_context().get_node_id()
            facts["ray_node_ip"] = ray.util.get_node_ip_address()
    except ImportError:
        pass
    return facts


class Executor(Protocol):
    """Runs chains of tasks through a step store (skipping finished steps)."""

    def run_chains(self, store: StepStore, chains: Sequence[Sequence[Task]], on_fail: OnFail) -> None:
        """Run every chain; ``on_fail(chain index, task, error)`` when a step fails (its chain stops)."""
        ...

    #: ``shard_map(func, arglists)``: ``func(*args)`` for each args, results in order (evaluation
    #: shards); a module-level callable, so a step running elsewhere can take it along
    shard_map: Callable[..., list[Any]]

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], resources: dict[str, float] | None) -> Any:
        """``(func(*args), node facts)`` where ``resources`` are (``None``: anywhere; this process for
        the local executors, which refuse resources)."""
        ...


class _InProcess:
    """``shard_map`` and ``call`` in this process (the local executors')."""

    shard_map: Callable[..., list[Any]] = staticmethod(local_map)

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], resources: dict[str, float] | None) -> Any:
        if resources:
            from quantsweep.errors import QuantsweepError

            raise QuantsweepError(f"resources {sorted(resources)} need a cluster", "use --executor ray",
                                  "bench_on")
        return func(*args), node_facts()


class LocalExecutor(_InProcess):
    """Every step in this process, chain after chain."""

    def run_chains(self, store: StepStore, chains: Sequence[Sequence[Task]], on_fail: OnFail) -> None:
        for ci, chain in enumerate(chains):
            for task in chain:
                try:
                    store.step(task.step, task.inputs(), task.outputs, functools.partial(_call, task.func, task.args,
                                                                                          task.log))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed step is its candidate's row
                    on_fail(ci, task, exc)
                    break


@dataclass(frozen=True)
class Backend:
    """An asynchronous place to run steps (a process pool, a Ray cluster), as :func:`drive` uses it.

    Attributes:
        submit: ``submit(task)`` starts a step elsewhere and returns its handle.
        ready: ``ready(handles)`` returns the finished ones (waiting a little when none is).
        result: ``result(handle)`` raises the step's exception if it failed.
        abort: ``abort(handles)`` stops what still runs when this process is interrupted.
    """

    submit: Callable[[Task], Any]
    ready: Callable[[list[Any]], list[Any]]
    result: Callable[[Any], None]
    abort: Callable[[list[Any]], None]


def drive(store: StepStore, chains: Sequence[Sequence[Task]], on_fail: OnFail, backend: Backend) -> None:
    """Run ``chains`` on an asynchronous ``backend``, this process recording every step in ``store``."""
    submit, ready, result, abort = backend.submit, backend.ready, backend.result, backend.abort
    pending: dict[int, tuple[Any, Task, Any, float]] = {}  # chain -> (handle, task, inputs, start)
    position = [0] * len(chains)

    def advance(ci: int) -> None:
        while position[ci] < len(chains[ci]):
            task = chains[ci][position[ci]]
            inputs = task.inputs()
            if store.is_done(task.step, inputs, task.outputs):
                store.on_event({"event": "skip", "step": task.step})
                position[ci] += 1
                continue
            store.on_event({"event": "start", "step": task.step})
            pending[ci] = (submit(task), task, inputs, time.perf_counter())
            return

    try:
        for ci in range(len(chains)):
            advance(ci)
        while pending:
            done = ready([h for h, *_ in pending.values()])
            for ci in [ci for ci, (h, *_) in pending.items() if h in done]:
                handle, task, inputs, t0 = pending.pop(ci)
                try:
                    result(handle)
                except Exception as exc:  # noqa: BLE001 - a failed step is its candidate's row
                    store.record(task.step, inputs, task.outputs, time.perf_counter() - t0, exc)
                    on_fail(ci, task, exc)
                    continue
                store.record(task.step, inputs, task.outputs, time.perf_counter() - t0)
                position[ci] += 1
                advance(ci)
    except BaseException:
        abort([h for h, *_ in pending.values()])
        raise


@dataclass(frozen=True)
class PoolExecutor(_InProcess):
    """Steps in ``jobs`` spawned worker processes; this process alone writes the manifest."""

    jobs: int

    def run_chains(self, store: StepStore, chains: Sequence[Sequence[Task]], on_fail: OnFail) -> None:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        pool = multiprocessing.get_context("spawn").Pool(self.jobs, initializer=_worker_init,
                                                         initargs=(threads, os.getpid()))

        def ready(handles: list[Any]) -> list[Any]:
            done = [h for h in handles if h.ready()]
            if not done:
                time.sleep(0.05)
            return done

        try:
            drive(store, chains, on_fail,
                  Backend(submit=lambda task: pool.apply_async(worker_call, (task.func, task.args, task.log)),
                          ready=ready, result=lambda h: h.get(), abort=lambda handles: pool.terminate()))
        finally:
            pool.close()
            pool.join()
