"""--jobs: capped by cores and memory; chains stop at their first failure; parallel = sequential."""

import pytest

from quantsweep import jobs
from quantsweep.jobs import Task, effective_jobs, run_chains


def test_jobs_are_capped_by_cores_and_memory(monkeypatch):
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(jobs, "_available_memory_gb", lambda: 100.0)
    assert effective_jobs(3) == (3, None)
    n, why = effective_jobs(8)
    assert n == 4 and "4 cores" in why
    monkeypatch.setattr(jobs, "_available_memory_gb", lambda: 5.5)
    n, why = effective_jobs(4)
    assert n == 2 and "5.5 GB" in why
    monkeypatch.setattr(jobs, "_available_memory_gb", lambda: 1.0)
    assert effective_jobs(4)[0] == 1  # never below one


class _Runner:
    """The slice of quantsweep.runner.Runner that run_chains uses."""

    def __init__(self):
        self.manifest, self.events = {}, []

    def is_done(self, name, inputs, outputs):
        return self.manifest.get(name) == "done"

    def record(self, name, inputs, outputs, seconds, error=None):
        self.manifest[name] = "failed" if error else "done"

    def step(self, name, inputs, outputs, fn):
        if self.is_done(name, inputs, outputs):
            self.on_event({"event": "skip", "step": name})
            return
        try:
            fn()
        except Exception as exc:
            self.record(name, inputs, outputs, 0, exc)
            raise
        self.record(name, inputs, outputs, 0)

    def on_event(self, e):
        self.events.append(e)


def _write(path, text):
    if text == "boom":
        raise ValueError(f"cannot write {path.name}")
    path.write_text(text)


@pytest.mark.parametrize("n", [1, 2])
def test_chains_run_in_order_and_stop_at_a_failure(tmp_path, n):
    runner, failed = _Runner(), []
    chains = [[Task(f"a{i}", lambda: {}, [tmp_path / f"a{i}"], _write, (tmp_path / f"a{i}", "x")),
               Task(f"b{i}", lambda: {}, [tmp_path / f"b{i}"], _write, (tmp_path / f"b{i}", "boom" if i == 1 else "y"),
                    tmp_path / "logs" / f"b{i}.log"),
               Task(f"c{i}", lambda: {}, [tmp_path / f"c{i}"], _write, (tmp_path / f"c{i}", "z"))]
              for i in range(3)]
    run_chains(runner, chains, n, lambda ci, task, exc: failed.append((ci, task.step, str(exc))))
    assert failed == [(1, "b1", "cannot write b1")]
    assert runner.manifest == {"a0": "done", "b0": "done", "c0": "done", "a1": "done", "b1": "failed",
                               "a2": "done", "b2": "done", "c2": "done"}
    assert not (tmp_path / "c1").exists() and (tmp_path / "c2").read_text() == "z"
    runner2 = _Runner()
    runner2.manifest = dict(runner.manifest)
    run_chains(runner2, chains[:1], n, lambda *a: None)  # finished steps are skipped
    assert [e["event"] for e in runner2.events] == ["skip"] * 3
    assert (tmp_path / "logs" / "b0.log").is_file()  # each step's output captured in its log
