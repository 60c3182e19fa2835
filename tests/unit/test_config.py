from pathlib import Path

import pytest

from quantsweep.errors import QuantsweepError
from quantsweep.sweep.config import SweepConfig


def test_yaml_round_trip(tmp_path):
    cfg = SweepConfig(model=Path("m.pt"), ks=(0, 5), schemes=("int8-qdq", "fp8-qdq"), budget=0.5)
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert SweepConfig.resolve(yaml_path=p) == cfg


def test_cli_wins_over_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("ks: [0, 10]\nbudget: 2.0\n")
    cfg = SweepConfig.resolve({"ks": "0,5", "budget": None}, p)
    assert cfg.ks == (0, 5) and cfg.budget == 2.0


@pytest.mark.parametrize("cli, match", [({"ks": "0,-1"}, "non-negative"), ({"ks": "a"}, "integers"),
                                        ({"schemes": "int9"}, "did you mean 'int8-qdq'"),
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
    from quantsweep.cli.main import main
    from quantsweep.evaluate.run import EvalSettings
    from quantsweep.runtimes.base import BenchSettings

    with pytest.raises(QuantsweepError) as err:
        EvalSettings(max_det=0)
    assert str(err.value).startswith("max_det must be at least 1") and "--" not in str(err.value)
    assert err.value.as_flag().startswith("--max-det must be at least 1")
    with pytest.raises(QuantsweepError) as err:
        BenchSettings(batches=(0,))
    assert "--" not in str(err.value) and err.value.as_flag({"batches": "--batch"}).startswith("--batch must be")
    code = main(["run", "--budget", "-1", "--dry-run", "--out", str(tmp_path)])
    assert code == 2 and "--budget must be >= 0" in capsys.readouterr().err


# settings a YAML config may hold that deliberately have no `run` flag
CONFIG_ONLY: set[str] = set()  # every setting is a flag (one declaration: quantsweep.sweep.settings)


def _run_parser():
    from quantsweep.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["run"]


def test_every_run_flag_is_a_config_field_and_every_field_a_flag():
    import dataclasses

    from quantsweep.sweep.config import SweepConfig

    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    dests = {a.dest for a in _run_parser()._actions if a.option_strings} - {"help", "debug"}
    not_config = {"config", "resume", "dry_run", "quiet", "log_json"}  # how to run, not what is decided
    assert dests - not_config <= fields, sorted(dests - not_config - fields)
    assert fields - CONFIG_ONLY <= dests, sorted(fields - CONFIG_ONLY - dests)
    for a in _run_parser()._actions:  # flags are the field names with dashes
        if a.dest in fields:
            assert f"--{a.dest.replace('_', '-')}" in a.option_strings, a.option_strings


def test_the_defaults_in_run_help_are_the_config_defaults():
    import dataclasses
    import re

    from quantsweep.sweep.config import SweepConfig

    defaults = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
    checked = 0
    for a in _run_parser()._actions:
        m = re.search(r"\(default:? ([^;),]+)", a.help or "")
        if a.dest not in defaults or defaults[a.dest] is None or m is None or not re.match(r"^[\d.]+$", m.group(1).split()[0]):
            continue
        said, actual = m.group(1).split()[0], defaults[a.dest]
        if isinstance(actual, tuple):
            actual = ",".join(map(str, actual))
        assert float(said.split(",")[0]) == float(str(actual).split(",")[0]), (a.dest, said, actual)
        checked += 1
    assert checked >= 12  # most numeric flags state their default


def test_the_size_search_is_asked_for_by_size_or_a_four_bit_budget_on_the_command_line(tmp_path):
    assert SweepConfig().size is False
    assert SweepConfig.resolve({"size": True}).size is True
    assert SweepConfig.resolve({"w4_budget": 2.5}).size is True and SweepConfig.resolve({"w4a8_budget": 4.0}).size
    # a config.yaml lists every setting (a resumed run's too): its budgets do not ask for the size search
    path = tmp_path / "run.yaml"
    path.write_text(SweepConfig().to_yaml())
    assert SweepConfig.resolve(yaml_path=path).size is False
    assert SweepConfig.resolve({"w4_budget": 3.0}, yaml_path=path).size is True


def _all_actions():
    import argparse

    from quantsweep.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(name, a) for name, p in sub.choices.items() for a in p._actions if a.option_strings and a.dest != "help"]


def test_every_flag_of_every_command_has_help():
    missing = [f"{name} {a.option_strings[0]}" for name, a in _all_actions() if not (a.help or "").strip()]
    assert not missing, missing


def test_one_name_per_setting_across_commands_and_old_spellings_note_once(capsys, tmp_path):
    from quantsweep.cli.main import build_parser, main
    from quantsweep.sweep.settings import OLD_SPELLINGS, settings

    names = {s.flag for s in settings()}
    for command, a in _all_actions():  # a setting's flag means the same setting (dest) in every command
        flag, *aliases = a.option_strings
        if flag in names:
            assert a.dest == flag[2:].replace("-", "_"), (command, flag, a.dest)
        assert all(old in OLD_SPELLINGS and OLD_SPELLINGS[old] == flag for old in aliases if old != "--no-ablation"), \
            (command, a.option_strings)
    args = build_parser().parse_args(["bench", "--model", "m.onnx", "--batch", "1,8", "--backend", "ort-cpu",
                                      "--backends", "openvino", "--out", "b.json"])
    assert (args.batches, args.backends) == ("1,8", ["ort-cpu", "openvino"])
    assert sorted(args.notes) == [f"note: {old} is now {OLD_SPELLINGS[old]} (one name per setting in every command); "
                                  "the old spelling still works" for old in ("--backend", "--batch")]
    rc = main(["sensitivity", "--model", str(tmp_path / "absent.onnx"), "--calib-dir", str(tmp_path), "--images", "2",
               "--out", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("note: --images is now --sensitivity-images") == 1
    args = build_parser().parse_args(["run", "--images", "imgs", "--batches", "1"])  # run's --images is its own setting
    assert str(args.images) == "imgs" and not getattr(args, "notes", None)


def test_the_usage_page_holds_the_generated_flag_table():
    from quantsweep.sweep.settings import flags_table

    assert flags_table() in (Path(__file__).parents[2] / "docs" / "usage.md").read_text(), "run: python scripts/flags.py"
