"""Print docs/architecture.md's architecture table from the import-linter layers in pyproject.toml.

Each row is one layer (top imports bottom, never the reverse); packages in one row do not import
each other. The description is the first sentence of each package's or module's docstring.
``tests/unit/test_architecture.py`` checks that docs/architecture.md holds exactly this table.

    python scripts/architecture.py
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layers() -> list[list[str]]:
    """The layers contract of pyproject.toml, top first, each a list of module names."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    contract = next(c for c in cfg if c["type"] == "layers")
    return [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]


def summary(module: str) -> str:
    """First sentence of the module's (or package's) docstring."""
    path = ROOT / "src" / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return first.split(". ")[0].rstrip(".")


def table() -> str:
    rows = ["| layer | package | what it holds |", "|---:|---|---|"]
    for i, layer in enumerate(layers(), 1):
        for module in layer:
            rows.append(f"| {i} | `{module.removeprefix('quantsweep.')}` | {summary(module)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
