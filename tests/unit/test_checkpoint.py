"""Untrusted checkpoints: a pickle that would run code is refused unless explicitly trusted."""

import os

import pytest
import torch

from quantsweep.cli.main import main
from quantsweep.model.checkpoint import check_checkpoint


class _Planted:
    """Unpickling this calls os.system(...): the classic malicious-checkpoint payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil_pt(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Planted(marker), "train_args": {}}, path)
    assert not marker.exists()
    return path, marker


def test_planted_pickle_is_refused_and_nothing_runs(evil_pt, tmp_path, capsys):
    path, marker = evil_pt
    code = main(["export", "--model", str(path), "--out", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "evil.pt" in err and "posix.system" in err and "--trust-checkpoint" in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists(), "the checkpoint's payload ran"


def test_trust_flag_lets_it_through(evil_pt, tmp_path, capsys):
    path, marker = evil_pt
    main(["export", "--model", str(path), "--out", str(tmp_path / "o.onnx"), "--trust-checkpoint"])
    capsys.readouterr()
    assert marker.exists()  # proof that the refusal above was what kept it from running


def test_demo_checkpoint_loads_safely():
    from quantsweep.demo import checkpoint_path

    names = check_checkpoint(checkpoint_path())
    assert "ultralytics.nn.tasks.DetectionModel" in names
    assert all(n.startswith(("torch.nn.", "ultralytics.nn.")) for n in names)
