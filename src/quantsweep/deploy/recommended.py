"""``recommended/``: the file to ship, its scheme JSON and how to run it — the decision's output.

The report shows the same run command (:func:`run_command`); Ultralytics' layouts come from
:mod:`quantsweep.deploy.ecosystem`.
"""

from __future__ import annotations

from pathlib import Path

from quantsweep.bench.timing import speedup_text
from quantsweep.deploy.ecosystem import ultralytics_layout, ultralytics_metadata
from quantsweep.files import ModelFile, atomic_replace, atomic_write_text
from quantsweep.results import Decision, Row

__all__ = ["hand_back", "run_command"]


def run_command(name: str, backend: str | None, file: str | None = None, image: Path | None = None) -> str:
    """The shell command that runs ``recommended/<file>`` (default ``<name>.onnx``) from that folder on
    ``backend``'s runtime (or, when that runtime cannot open the file's format, the first that can):
    ``quantsweep predict`` on ``image`` when one is known, else one pass over zeros that prints the
    output shape."""
    from quantsweep.runtimes import RUNTIMES, runtime_for

    file = file or f"{name}.onnx"
    runtime = runtime_for(Path(file), RUNTIMES[backend].provider if backend in RUNTIMES else "cpu")
    if image is not None:
        return f"quantsweep predict --model {file} --images {image} --provider {runtime.provider} --out predictions"
    opened = runtime.open_code(file).replace("\n", "; ")
    return ('python -c "import numpy as np; from quantsweep.model.formats import inspect_model; '
            f"h, w = inspect_model('{file}', require_detector=False).hw; {opened}; "
            "print('output', run(np.zeros((1, 3, h, w), np.float32)).shape)\"")


def hand_back(run_dir: Path, decision: Decision, rows: list[Row], image: Path | None = None) -> None:
    """``recommended/``: the chosen model, its scheme JSON and how to run it (nothing when FP32 stays):
    ``quantsweep predict`` on ``image`` (a confirmation image) and the same steps as a Python snippet."""
    if decision.candidate in (None, "fp32"):
        return
    name = decision.candidate
    row = next(r for r in rows if r.candidate == name and r.backend == decision.backend)
    out = run_dir / "recommended"
    src = run_dir / "candidates"
    model = ModelFile.find(src, name).copy_into(out)
    atomic_replace(src / f"{name}.scheme.json", out / f"{name}.scheme.json", copy=True)
    meta = ultralytics_metadata(src / "fp32.onnx")
    loadable = ultralytics_layout(model, meta)
    status = ("" if decision.status == "deploy" else
              f"**Best candidate, NOT confirmed on held-out images**: {decision.note or 'see the report'}\n\n")
    atomic_write_text(out / "README.md", f"""# {name} on {decision.backend}

{status}{decision.reason}

Label on {decision.backend}: {row.label}; {row.latency_p50_ms} ms p50 per batch, {speedup_text(row.speedup_vs_fp32, row.speedup_ci95_low, row.speedup_ci95_high)} FP32 on the
machine that ran the sweep. The exact scheme (tool, settings, calibration, kept-float nodes) is in
`{name}.scheme.json`. Input: letterboxed RGB, /255, NCHW float32 (as `quantsweep eval`).

Run it on a photo (from this folder; boxes drawn into `predictions/`, detections in `predictions/detections.json`):

```bash
{run_command(name, decision.backend, model.name, image)}
```
{_snippet_section(model.path, image, decision.backend)}
{_ultralytics_section(loadable, meta, image)}
Measure it against FP32 on this machine:

```bash
quantsweep bench --model ../candidates/fp32.onnx --model {model.name} --backends {decision.backend} --out bench.json
```
""")


def _ultralytics_section(loadable: Path | None, meta: dict[str, str], image: Path | None) -> str:
    """How Ultralytics runs it as written (``yolo predict`` / ``yolo val``), or why it cannot."""
    if loadable is None:
        return ("The FP32 model carries no Ultralytics metadata (class names, image size), so no Ultralytics "
                "layout was written.\n")
    import ast

    size = ast.literal_eval(meta.get("imgsz", "[640]"))[0]
    kind = "OpenVINO IR folder" if loadable.is_dir() else "ONNX file with its metadata"
    return f"""Ultralytics loads it as written (its {kind}; `pip install ultralytics`):

```bash
yolo predict model={loadable.name} source={image or 'IMAGES'} imgsz={size}
yolo val model={loadable.name} data=YOUR_DATA.yaml imgsz={size} batch=1
```
"""


def _snippet_section(model: Path, image: Path | None, backend: str | None = None) -> str:
    """The same steps in Python (runtime, letterbox, decode): what a user writes next, with the same numbers."""
    if image is None:
        return ""
    from quantsweep.errors import QuantsweepError
    from quantsweep.evaluate.photos import snippet
    from quantsweep.model.formats import inspect_model

    try:
        info = inspect_model(model)
    except QuantsweepError:  # not a detector quantsweep can decode: the command above still runs it
        return ""
    if info.layout is None or info.hw is None:
        return ""
    from quantsweep.runtimes import RUNTIMES

    provider = RUNTIMES[backend].provider if backend in RUNTIMES else "auto"
    code = snippet(Path(model.name), image, str(info.layout), info.hw, provider=provider)
    return f"""
The same in Python, with only the runtime, OpenCV and numpy (and quantsweep's decoding); it prints the boxes
`quantsweep predict` finds:

```python
{code}```
"""
