"""Choose the executor a sweep runs its steps with: local, a process pool, or a Ray cluster."""

from __future__ import annotations

from quantsweep.sweep.executors import Executor, LocalExecutor, PoolExecutor

__all__ = ["make_executor"]


def make_executor(jobs: int, kind: str = "local", address: str | None = None, shared_dir: bool = False) -> Executor:
    """:class:`LocalExecutor` for one job, a :class:`PoolExecutor` for more (``jobs`` already capped),
    or a :class:`RayExecutor` (each task asking for one CPU; files shipped unless ``shared_dir``)."""
    if kind == "ray":
        from quantsweep.sweep.ray_executor import RayExecutor  # Ray is imported only when chosen

        return RayExecutor(address, shared_dir=shared_dir)
    return LocalExecutor() if jobs <= 1 else PoolExecutor(jobs)
