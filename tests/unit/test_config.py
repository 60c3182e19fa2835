from pathlib import Path

import pytest

from quantsweep.errors import QuantsweepError
from quantsweep.sweep.config import SweepConfig


def test_yaml_round_trip(tmp_path):
    cfg = SweepConfig(model=Path("m.pt"), ks=(0, 5), schemes=("int8", "fp8"), budget=0.5)
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert SweepConfig.resolve(yaml_path=p) == cfg


def test_cli_wins_over_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("ks: [0, 10]\nbudget: 2.0\n")
    cfg = SweepConfig.resolve({"ks": "0,5", "budget": None}, p)
    assert cfg.ks == (0, 5) and cfg.budget == 2.0


@pytest.mark.parametrize("cli, match", [({"ks": "0,-1"}, "non-negative"), ({"ks": "a"}, "integers"),
                                        ({"schemes": "int9"}, "did you mean 'int8'"),
                                        ({"backends": "ort-gpu"}, "unknown backend"),
                                        ({"max_images": 0}, "positive")])
def test_bad_values(cli, match):
    with pytest.raises(QuantsweepError, match=match):
        SweepConfig.resolve(cli)


def test_unknown_yaml_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("budgte: 1\n")
    with pytest.raises(QuantsweepError, match="did you mean 'budget'"):
        SweepConfig.resolve(yaml_path=p)


def test_public_api_is_the_cli_s_function():
    import quantsweep
    from quantsweep.sweep.runner import run_sweep

    assert quantsweep.run_sweep is run_sweep and quantsweep.SweepConfig is SweepConfig
