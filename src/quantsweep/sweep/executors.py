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
from quantsweep.sweep.shipping import Shipper, run_staged
from quantsweep.sweep.store import StepStore

__all__ = ["JOB_MEMORY_GB", "Executor", "LocalExecutor", "PoolExecutor", "RayExecutor", "Task", "effective_jobs",
           "make_executor", "node_facts"]

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


def _worker_call(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None) -> None:
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


def ray_shard_map(threads: int, retries: int, ship: bool, func: Callable[..., Any],
                  arglists: Sequence[tuple[Any, ...]], gpus: float = 0) -> list[Any]:
    """``func(*args)`` for each args as parallel Ray tasks (from the driver or from inside a task);
    with ``ship``, each task's files travel through the object store (:mod:`.shipping`)."""
    import ray

    if not ship:
        remote = ray.remote(_ray_apply).options(num_cpus=threads, num_gpus=gpus, max_retries=retries)
        return list(ray.get([remote.remote(func, args) for args in arglists]))
    shipper = Shipper(ray.put)
    shipped = ray.remote(_ray_apply_shipped).options(num_cpus=threads, num_gpus=gpus, max_retries=retries)
    return [value for value, _ in ray.get([shipped.remote(func, *shipper.pack(args)) for args in arglists])]


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


def _drive(store: StepStore, chains: Sequence[Sequence[Task]], on_fail: OnFail, submit: Callable[[Task], Any],
           ready: Callable[[list[Any]], list[Any]], result: Callable[[Any], None],
           abort: Callable[[list[Any]], None]) -> None:
    """Run ``chains`` on an asynchronous backend, this process recording every step in ``store``.

    ``submit(task)`` starts a step elsewhere and returns its handle; ``ready(handles)`` returns the
    finished ones (waiting a little when none is); ``result(handle)`` raises the step's exception
    if it failed; ``abort(handles)`` stops what still runs when this process is interrupted.
    """
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
            _drive(store, chains, on_fail,
                   submit=lambda task: pool.apply_async(_worker_call, (task.func, task.args, task.log)),
                   ready=ready, result=lambda h: h.get(), abort=lambda handles: pool.terminate())
        finally:
            pool.close()
            pool.join()


def _ray_call(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None, threads: int) -> None:
    os.environ["QUANTSWEEP_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    _worker_call(func, args, log)


def _ray_call_shipped(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None, threads: int,
                      files: dict[str, Any], out_dirs: list[str]) -> tuple[None, dict[str, bytes]]:
    import ray

    os.environ["QUANTSWEEP_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return run_staged(_worker_call, (func, args, log), files, out_dirs, ray.get)


def _ray_apply(func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return func(*args)


def _ray_apply_shipped(func: Callable[..., Any], args: tuple[Any, ...],
                       files: dict[str, Any]) -> tuple[Any, dict[str, bytes]]:
    import ray

    return run_staged(func, args, files, [], ray.get)


def _ray_apply_here(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, dict[str, Any]]:
    return func(*args), node_facts()


def _ray_apply_here_shipped(func: Callable[..., Any], args: tuple[Any, ...],
                            files: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import ray

    value, _ = run_staged(func, args, files, [], ray.get)
    return value, node_facts()


class RayExecutor:
    """Steps as Ray tasks on the cluster at ``address`` (None: a private local Ray, stopped after).

    Each step asks for ``threads`` CPUs and :data:`JOB_MEMORY_GB` of memory; a worker that dies
    is retried up to ``retries`` times; an exception is the step's failure (not retried). Without
    ``shared_dir`` the workers get their input files through the object store and send the files
    they write back to this process (:mod:`quantsweep.sweep.shipping`); with it they read and
    write the run folder in place (a path every node sees).
    """

    def __init__(self, address: str | None = None, threads: int = 1, retries: int = 2,
                 shared_dir: bool = False) -> None:
        try:
            import ray
        except ImportError:
            from quantsweep.errors import QuantsweepError

            raise QuantsweepError("--executor ray needs Ray, which is not installed",
                                  "pip install 'quantsweep[ray]'", "executor") from None
        self.threads, self.retries = threads, retries
        self.tasks: list[str] = []  # every step run as a Ray task, in submission order (executor.json)
        self._started = not ray.is_initialized()
        if self._started:
            # a private Ray (no address) and a cluster on this machine stay on the loopback address
            host = (address or "127.0.0.1").split("://")[-1].rsplit(":", 1)[0]
            loopback = host in ("127.0.0.1", "localhost")
            if loopback:
                # Ray rewrites a 127.0.0.1 address to this machine's routable IP before connecting,
                # which a cluster bound to the loopback address does not listen on; its own switch
                # for loopback-only (laptop) clusters keeps the address as given.
                import ray._private.ray_constants as ray_constants

                ray_constants.ENABLE_RAY_CLUSTER = False
                ray.init(address=address, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._ray = ray
        self.ship = not shared_dir
        self.shipper = Shipper(ray.put)
        self._step: Any = ray.remote(_ray_call_shipped if self.ship else _ray_call)
        self._apply_here: Any = ray.remote(_ray_apply_here_shipped if self.ship else _ray_apply_here)
        self.shard_map: Callable[..., list[Any]]
        self.request_gpus(0.0)

    def request_gpus(self, gpus: float) -> None:
        """Each build, evaluation and shard task asks for ``gpus`` GPUs (the evaluation provider is
        CUDA or TensorRT: the scores come from a GPU, so the task must land on a node with one)."""
        self.gpus = gpus
        self.shard_map = functools.partial(ray_shard_map, self.threads, self.retries, self.ship, gpus=gpus)

    def stats(self) -> dict[str, Any]:
        """Where this run's steps ran and the files that travelled (this session, not a resumed one's)."""
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return {"executor": "ray", "files": "shared folder" if not self.ship else "shipped through the object store",
                "nodes": len(nodes), "cluster_cpus": self._ray.cluster_resources().get("CPU", 0),
                **(self.shipper.stats() if self.ship else {}), "tasks": self.tasks}

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()

    def run_chains(self, store: StepStore, chains: Sequence[Sequence[Task]], on_fail: OnFail) -> None:
        ray = self._ray
        options = {"num_cpus": self.threads, "num_gpus": self.gpus, "memory": int(JOB_MEMORY_GB * 1024 ** 3),
                   "max_retries": self.retries}

        def result(ref: Any) -> None:
            try:
                value = ray.get(ref)
            except Exception as exc:  # the step's own exception, not Ray's wrapper, is its row's error
                raise (getattr(exc, "cause", None) or exc) from None
            if self.ship:
                self.shipper.land(value[1])  # this process writes what the worker made

        def abort(refs: list[Any]) -> None:
            for ref in refs:
                ray.cancel(ref, force=True)

        def submit(task: Task) -> Any:
            # named after the step: the worker's process title reads ray::<step> while it runs
            self.tasks.append(task.step)
            step = self._step.options(**options, name=task.step)
            if not self.ship:
                return step.remote(task.func, task.args, task.log, self.threads)
            out_dirs = sorted({str(Path(p).absolute().parent) for p in [*task.outputs, *([task.log] if task.log else [])]})
            args, files = self.shipper.pack(task.args, task.outputs)
            log = Path(task.log).absolute() if task.log else None
            return step.remote(task.func, args, log, self.threads, files, out_dirs)

        _drive(store, chains, on_fail, submit=submit,
               ready=lambda refs: ray.wait(refs, num_returns=1, timeout=0.5)[0], result=result, abort=abort)

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], resources: dict[str, float] | None) -> Any:
        """``func(*args)`` on a node holding ``resources`` (the whole of each, so one at a time there);
        returns ``(result, node facts)``.

        Raises:
            QuantsweepError: no node of the cluster carries one of ``resources``.
        """
        if resources:
            have = self._ray.cluster_resources()
            missing = [r for r in resources if have.get(r, 0) < resources[r]]
            if missing:
                from quantsweep.errors import QuantsweepError

                raise QuantsweepError(f"no node of the Ray cluster carries resource {missing[0]!r}",
                                      f"start a node with --resources '{{\"{missing[0]}\": 1}}', or drop --bench-on",
                                      "bench_on")
        remote = self._apply_here.options(num_cpus=self.threads, resources=resources or {}, max_retries=self.retries)
        ref = remote.remote(func, *self.shipper.pack(args)) if self.ship else remote.remote(func, args)
        return self._ray.get(ref)


def make_executor(jobs: int, kind: str = "local", address: str | None = None, shared_dir: bool = False) -> Executor:
    """:class:`LocalExecutor` for one job, a :class:`PoolExecutor` for more (``jobs`` already capped),
    or a :class:`RayExecutor` (each task asking for one CPU; files shipped unless ``shared_dir``)."""
    if kind == "ray":
        return RayExecutor(address, shared_dir=shared_dir)
    return LocalExecutor() if jobs <= 1 else PoolExecutor(jobs)
