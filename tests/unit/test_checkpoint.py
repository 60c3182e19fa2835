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


@pytest.fixture(scope="module")
def fused_pt(tmp_path_factory):
    """A checkpoint saved after Ultralytics' fuse(): its pickle calls getattr(<Conv>, "forward_fuse")."""
    from quantsweep.demo import checkpoint_path
    from quantsweep.offline import import_ultralytics

    ul = import_ultralytics()
    path = tmp_path_factory.mktemp("fused") / "fused.pt"
    ckpt = torch.load(str(checkpoint_path()), map_location="cpu", weights_only=False)
    ckpt["model"] = ul.YOLO(str(checkpoint_path())).model.fuse()
    torch.save(ckpt, path)
    return path


def test_fused_checkpoint_loads_without_trust(fused_pt, tmp_path):
    names = check_checkpoint(fused_pt)
    assert "builtins.getattr" in names  # the fused forward, bound on each layer
    from quantsweep.model.checkpoint import load_yolo

    model = load_yolo(fused_pt).model
    conv = next(m for m in model.modules() if type(m).__name__ == "Conv" and not hasattr(m, "bn"))
    assert conv.forward.__func__.__name__ == "forward_fuse"


class _GetattrOn:
    """Unpickling this calls getattr(target, name)."""

    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return (getattr, (self.target, self.name))


@pytest.mark.parametrize("target,name", [("a string", "upper"), (torch.nn.Conv2d(1, 1, 1), "_apply"),
                                         (torch.nn.Conv2d(1, 1, 1), "__class__")])
def test_getattr_onto_anything_but_a_model_method_is_refused(tmp_path, target, name):
    path = tmp_path / "planted.pt"
    torch.save({"model": _GetattrOn(target, name)}, path)
    from quantsweep.errors import QuantsweepError

    with pytest.raises(QuantsweepError, match="would run code when loaded"):
        check_checkpoint(path)
