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


def test_library_errors_name_settings_and_the_cli_names_flags(tmp_path, capsys):
    from quantsweep.bench.base import BenchSettings
    from quantsweep.cli.main import main
    from quantsweep.evaluate.run import EvalSettings

    with pytest.raises(QuantsweepError) as err:
        EvalSettings(max_det=0)
    assert str(err.value).startswith("max_det must be at least 1") and "--" not in str(err.value)
    assert err.value.as_flag().startswith("--max-det must be at least 1")
    with pytest.raises(QuantsweepError) as err:
        BenchSettings(batches=(0,))
    assert "--" not in str(err.value) and err.value.as_flag({"batches": "--batch"}).startswith("--batch must be")
    code = main(["run", "--budget", "-1", "--dry-run", "--out", str(tmp_path)])
    assert code == 2 and "--budget must be >= 0" in capsys.readouterr().err
