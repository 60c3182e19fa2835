"""The Ray executor: a sweep's build and evaluation steps as Ray tasks on a cluster (``--executor ray``).

Each task asks for its share of CPUs and :data:`~quantsweep.sweep.executors.JOB_MEMORY_GB` of
memory; a task whose worker dies is retried (Ray's ``max_retries``), one that raises is its
candidate's failed row. Files travel through Ray's object store (:mod:`quantsweep.sweep.shipping`)
unless the run folder is on a filesystem every node sees (``--shared-dir``); the driver alone
writes the manifest. Steps are named after themselves (a worker's title reads ``ray::<step>``)
and listed in ``executor.json``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quantsweep.sweep.executors import JOB_MEMORY_GB, Backend, OnFail, Task, drive, node_facts, worker_call
from quantsweep.sweep.shipping import Shipper, run_staged
from quantsweep.sweep.store import StepStore

__all__ = ["RayExecutor", "ray_shard_map"]


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


def _ray_call(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None, threads: int) -> None:
    os.environ["QUANTSWEEP_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    worker_call(func, args, log)


def _ray_call_shipped(func: Callable[..., Any], args: tuple[Any, ...], log: Path | None, threads: int,
                      files: dict[str, Any], out_dirs: list[str]) -> tuple[None, dict[str, bytes]]:
    import ray

    os.environ["QUANTSWEEP_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return run_staged(worker_call, (func, args, log), files, out_dirs, ray.get)


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
        """Where this run's steps ran and the files that travelled (this invocation, not a resumed one's)."""
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

        drive(store, chains, on_fail, Backend(submit=submit, ready=lambda refs: ray.wait(refs, num_returns=1,
                                                                                        timeout=0.5)[0],
                                              result=result, abort=abort))

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
