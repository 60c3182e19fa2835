"""--jobs: capped by cores and memory; chains stop at their first failure; parallel = sequential."""

import pytest

from quantsweep.sweep import executors as jobs
from quantsweep.sweep.choose import make_executor
from quantsweep.sweep.executors import LocalExecutor, PoolExecutor, Task, effective_jobs
from quantsweep.sweep.store import StepStore


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


def _write(path, text):
    if text == "boom":
        raise ValueError(f"cannot write {path.name}")
    path.write_text(text)


def test_make_executor_picks_local_or_pool():
    assert isinstance(make_executor(1), LocalExecutor)
    assert make_executor(3) == PoolExecutor(3)


def _states(store):
    return {name: rec["state"] for name, rec in store.manifest["steps"].items()}


@pytest.mark.parametrize("n", [1, 2])
def test_chains_run_in_order_and_stop_at_a_failure(tmp_path, n):
    events = []
    runner, failed = StepStore(tmp_path, events.append), []
    chains = [[Task(f"a{i}", lambda: {}, [tmp_path / f"a{i}"], _write, (tmp_path / f"a{i}", "x")),
               Task(f"b{i}", lambda: {}, [tmp_path / f"b{i}"], _write, (tmp_path / f"b{i}", "boom" if i == 1 else "y"),
                    tmp_path / "logs" / f"b{i}.log"),
               Task(f"c{i}", lambda: {}, [tmp_path / f"c{i}"], _write, (tmp_path / f"c{i}", "z"))]
              for i in range(3)]
    make_executor(n).run_chains(runner, chains, lambda ci, task, exc: failed.append((ci, task.step, str(exc))))
    assert failed == [(1, "b1", "cannot write b1")]
    assert _states(runner) == {"a0": "done", "b0": "done", "c0": "done", "a1": "done", "b1": "failed",
                               "a2": "done", "b2": "done", "c2": "done"}
    assert not (tmp_path / "c1").exists() and (tmp_path / "c2").read_text() == "z"
    again = []
    runner2 = StepStore(tmp_path, again.append)  # reopened from its manifest
    make_executor(n).run_chains(runner2, chains[:1], lambda *a: None)  # finished steps are skipped
    assert [e["event"] for e in again] == ["skip"] * 3
    assert (tmp_path / "logs" / "b0.log").is_file()  # each step's output captured in its log


def test_captured_output_goes_to_the_log_and_the_terminal_comes_back(tmp_path, capfd):
    import os

    from quantsweep.files import capture_output

    log = tmp_path / "logs" / "step.log"
    with pytest.raises(KeyboardInterrupt):
        with capture_output(log):
            os.write(1, b"from C\n")
            os.write(2, b"to stderr\n")
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a step
    os.write(2, b"resume with: ...\n")
    assert log.read_text() == "from C\nto stderr\n"
    assert "resume with" in capfd.readouterr().err
