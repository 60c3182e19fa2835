"""The architecture is checked, not described: the layers contract covers every package, a planted
upward import breaks it, and docs/architecture.md holds the table generated from it."""

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ARCH = runpy.run_path(str(ROOT / "scripts" / "architecture.py"))


def test_every_module_of_the_package_sits_in_exactly_one_layer():
    import pkgutil

    import quantsweep

    top = {f"quantsweep.{m.name}" for m in pkgutil.iter_modules(quantsweep.__path__) if m.name != "__main__"}
    layered = [m for layer in ARCH["layers"]() for m in layer]
    assert sorted(layered) == sorted(set(layered)), "a module is in two layers"
    assert set(layered) == top, f"not in the contract: {sorted(top - set(layered))}"


def test_readme_architecture_table_is_generated_from_the_contract():
    assert ARCH["table"]() in (ROOT / "docs" / "architecture.md").read_text(), "run: python scripts/architecture.py"


@pytest.mark.parametrize("planted", [
    ("model/graph.py", "from quantsweep.sweep import runner  # noqa: F401\n"),  # upward
    ("report/plots.py", "from quantsweep.cli import main  # noqa: F401\n"),  # upward
    ("evaluate/decode.py", "from quantsweep.bench import timing  # noqa: F401\n"),  # across independent siblings
    ("decide/decision.py", "from quantsweep.report import html  # noqa: F401\n"),  # decide sits below report
    ("runtimes/tensorrt.py", "from quantsweep.schemes import modelopt_qdq  # noqa: F401\n"),  # independent siblings
])
def test_a_planted_upward_import_breaks_the_contract(tmp_path, planted):
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is not installed: the README's install ([test]) brings it"
    shutil.copytree(ROOT / "src" / "quantsweep", tmp_path / "quantsweep",
                    ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    clean = subprocess.run([lint, "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout[-2000:]
    target = tmp_path / "quantsweep" / planted[0]
    target.write_text(target.read_text() + "\n" + planted[1])
    broken = subprocess.run([lint, "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout, broken.stdout[-2000:]


def test_format_special_cases_live_in_the_format_module_only():
    """Which format a model file is answers itself (quantsweep.model.formats): no other module branches
    on OPENVINO_IR / ONNX / TENSORRT_ENGINE, and no scheme object is probed for attributes."""
    import re

    branch = re.compile(r"\b(OPENVINO_IR|TENSORRT_ENGINE)\b|\.format is\b")
    probe = re.compile(r"\b(getattr|hasattr)\((scheme|s|s0|sch)\b")
    home = {ROOT / "src" / "quantsweep" / "files.py", ROOT / "src" / "quantsweep" / "model" / "formats.py"}
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "src").rglob("*.py")) if p not in home
             for n, line in enumerate(p.read_text().splitlines(), 1) if branch.search(line) or probe.search(line)]
    assert not found, found


def _functions(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_modules_stay_small_and_the_sweep_s_functions_take_few_parameters():
    """No module over 400 lines; no function in sweep/ with more than 6 parameters (self aside)."""
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted((ROOT / "src").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400]
    assert not long, long
    wide = []
    for p in sorted((ROOT / "src" / "quantsweep" / "sweep").glob("*.py")):
        for f in _functions(p):
            a = f.args
            names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)] + [x.arg for x in (a.vararg, a.kwarg) if x]
            if len([n for n in names if n not in ("self", "cls")]) > 6:
                wide.append(f"{p.name}:{f.name}")
    assert not wide, wide


def test_the_sweep_s_stages_are_typed_and_the_search_mutates_no_outer_state():
    """The stages ``execute`` calls take and return typed records (no ``Any``), and the search holds no
    nested function (its state lives on :class:`KSearch`, not in closures over the caller's dicts)."""
    import ast
    import inspect

    from quantsweep.sweep import stage_bench, stage_build, stage_decide, stage_profile, stage_search

    stages = [stage_build.sensitivities, stage_build.build_and_evaluate, stage_build.blame_collapses,
              stage_bench.choose_target, stage_bench.eval_settings, stage_bench.benchmarks, stage_search.search,
              stage_decide.confirm, stage_profile.profiles, stage_decide.report]
    untyped = [f"{f.__name__}: {a}" for f in stages for a in inspect.get_annotations(f).values() if "Any" in str(a)]
    assert not untyped, untyped
    nested = [f"{outer.name}.{inner.name}" for outer in _functions(Path(stage_search.__file__))
              for inner in ast.walk(outer) if inner is not outer and isinstance(inner, ast.FunctionDef)]
    assert not nested, nested
