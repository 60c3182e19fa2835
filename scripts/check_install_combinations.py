"""pip's own resolver on this project's files: the core install and each extra (``all`` = every extra).

Each combination must resolve to exactly one ONNX Runtime distribution and one OpenCV distribution,
and pull torch only with the extras that need it. Run once by ``.ci/run`` (it takes minutes: one
resolver run per combination), not by the test suite.

    python scripts/check_install_combinations.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [e for e in project["optional-dependencies"] if e not in ("test", "dev")]
    failed = 0
    for extra in (None, *extras):
        target = f"{ROOT}[{extra}]" if extra else str(ROOT)
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                                   "--report", str(report), target], capture_output=True, text=True, timeout=900)
            if proc.returncode != 0 and "No matching distribution" in proc.stderr + proc.stdout:
                print(f"install-check: {extra or 'core'}: skipped, the package index is not reachable here")
                continue
            if proc.returncode != 0:
                print(f"install-check: {extra or 'core'}: pip could not resolve: {proc.stderr.strip()[-300:]}")
                failed += 1
                continue
            names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
        problems = []
        if len(names & {"onnxruntime", "onnxruntime-gpu"}) != 1:
            problems.append(f"ONNX Runtime distributions: {sorted(names & {'onnxruntime', 'onnxruntime-gpu'})}")
        opencv = names & {"opencv-python", "opencv-python-headless", "opencv-contrib-python"}
        if len(opencv) != 1:
            problems.append(f"OpenCV distributions: {sorted(opencv)}")
        if ("torch" in names) != (extra in ("ultralytics", "modelopt", "all")):
            problems.append(f"torch {'pulled' if 'torch' in names else 'missing'}")
        print(f"install-check: {extra or 'core'}: {'; '.join(problems) or 'ok'} ({len(names)} distributions)")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
