"""One declaration per setting: each :class:`~quantsweep.sweep.config.SweepConfig` field's flag, help
and choices. ``quantsweep run``'s flags are generated from it, the other commands take the same
setting under the same name (``bench --batches``, ``sensitivity --sensitivity-images``), and the
flag table in docs/usage.md is generated from it too (``python scripts/flags.py``; a test keeps it
current).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HELP", "OLD_SPELLINGS", "Setting", "flags_table", "settings"]

# what each setting decides: the run's --help, docs/usage.md and YAML comments all read this
HELP: dict[str, str] = {
    "model": ".pt (Ultralytics) or .onnx detector (default: the packaged demo detector)",
    "demo": "without --model: which packaged demo detector",
    "images": "folder with the evaluation images",
    "annotations": "COCO instances JSON of the evaluation images",
    "data": "COCO 2017 root: ROOT/val2017/ + ROOT/annotations/instances_val2017.json",
    "max_images": "search subset: every candidate is scored on these",
    "image_ids": "text file of image ids (one per line) to use as the search subset; the rest may confirm",
    "calib_count": "calibration images (the first N of --calib-dir)",
    "calib_dir": "calibration images: any folder of images, searched recursively (default: the demo calib split); "
                  "never the evaluation subset",
    "calib_annotations": "optional COCO JSON of the calibration images (ids then name them in the run folder)",
    "imgsz": "export size for a .pt (default 320 for the demo, 640 otherwise)",
    "schemes": "comma-separated schemes (default: the registry's defaults, see quantsweep schemes)",
    "grid": "build the fixed grid (every scheme at every K of --ks) instead of searching K per runtime",
    "ks": "with --grid: comma-separated K-set",
    "max_evals": "the search's cap on K>0 probes, each built, scored and timed",
    "backends": "comma-separated runtimes (quantsweep run's default: every one available here)",
    "batches": "comma-separated batch sizes to benchmark",
    "budget": "max mAP50-95 loss in points of the recommendation",
    "w4_budget": "max loss in points of the 4-bit (size) candidates; their 8-bit convs are searched (giving it "
                 "implies --size)",
    "w4a8_budget": "the same for W4A8, whose int8 activations cost on top of its 4-bit weights (giving it implies --size)",
    "size": "also decide the smallest 4-bit file: search each 4-bit family's 8-bit convs against "
            "--w4-budget/--w4a8-budget and confirm the picks (off by default: on a CPU 4-bit buys size, not speed; "
            "the 4-bit K=0 candidates are in the table either way)",
    "target_backend": "runtime the recommendation is for (default: where FP32 runs fastest)",
    "sensitivity_images": "calibration images each sensitivity probe runs on",
    "sensitivity_probe_top": "nodes measured exactly after the local-error screen (0 = every node)",
    "bench_seconds": "timed seconds per model and runtime",
    "bench_warmup": "untimed runs per model before timing",
    "conf": "score threshold of the detections mAP is computed on",
    "iou": "NMS IoU for heads that need NMS",
    "max_det": "detections kept per image",
    "confirm_images": "held-out images (after the search subset) that re-score the finalists (0 = off); with fewer "
                      "than 2 x --max-images images, the images are split in halves",
    "confirm_step": "confirmation images added per round until decided",
    "finalists": "candidates re-scored on the confirmation images",
    "bootstrap": "paired bootstrap resamples for ΔmAP's interval and standard error (min 200)",
    "alpha": "the run's error budget: chance that any verdict it prints confirms a model whose true loss exceeds "
             "its budget (the speed verdict gets 0.8 of it)",
    "alpha_spending": "how alpha is spent over the confirmation looks (obf: O'Brien-Fleming)",
    "seed": "seed of the bootstrap resamples and of every random choice the run makes",
    "gallery": "image pairs the report shows where the pick changed most (0: none)",
    "gallery_conf": "score threshold of the gallery's boxes",
    "profile_runs": "calls each per-node profile averages (FP32 and the possible picks on the target runtime, "
                    "from the runtime's own counters: the report's 'Where the time goes'); 0: no profile",
    "jobs": "parallel builds/evaluations (worker processes)",
    "executor": "where steps run: local (this machine) or ray (a Ray cluster)",
    "ray_address": "auto | HOST:PORT | ray://HOST:PORT (default: a private local Ray)",
    "eval_shards": "split each evaluation into N image shards",
    "bench_on": "BACKEND=RESOURCE[,...]: time that backend only on nodes carrying RESOURCE",
    "shared_dir": "ray: the run folder and the data are on a filesystem every node sees at the same path (workers "
                  "read and write in place; default: files travel through Ray's object store)",
    "out": "runs folder",
    "ablation": "also build the INT8 candidate without the head policy (a diagnostic row)",
    "trust_checkpoint": "fully unpickle a .pt even if it references more than model classes (can run code)",
}
CHOICES: dict[str, tuple[str, ...]] = {"alpha_spending": ("obf", "pocock"), "executor": ("local", "ray")}
# old flag -> the setting's one name (commands that spelled it differently; each use prints one note)
OLD_SPELLINGS: dict[str, str] = {"--batch": "--batches", "--backend": "--backends", "--seconds": "--bench-seconds",
                                 "--warmup": "--bench-warmup", "--images": "--sensitivity-images",
                                 "--probe-top": "--sensitivity-probe-top"}


@dataclass(frozen=True)
class Setting:
    """One setting as a flag: its field, ``--flag``, value type, default, help and choices."""

    name: str
    flag: str
    kind: str  # "bool" | "int" | "float" | "str" | "path" | "list" | "int-list"
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    def default_text(self) -> str:
        if self.default is None or self.default == ():
            return "—"
        if isinstance(self.default, tuple):
            return ",".join(map(str, self.default))
        return str(self.default)


@functools.cache
def settings() -> tuple[Setting, ...]:
    """Every :class:`SweepConfig` field as a :class:`Setting`, in the config's order (built once: the
    parser asks for each flag's)."""
    from quantsweep.sweep.config import SweepConfig, field_kind

    out = []
    for f in dataclasses.fields(SweepConfig):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, Path):
            default = str(default)
        out.append(Setting(f.name, "--" + f.name.replace("_", "-"), field_kind(f), default, HELP[f.name],
                           CHOICES.get(f.name)))
    return tuple(out)


def flags_table() -> str:
    """docs/usage.md's table of ``quantsweep run`` settings (flag, YAML key, default, what it decides)."""
    rows = ["| flag | YAML key | default | what it decides |", "|---|---|---|---|"]
    for s in settings():
        what = s.help.replace("|", "\\|")
        if s.choices:
            sep = " \\| "
            what += f" ({sep.join(s.choices)})"
        flag = f"`{s.flag}`" if s.kind != "bool" or s.default is not True else f"`{s.flag}` / `--no-{s.flag[2:]}`"
        rows.append(f"| {flag} | `{s.name}` | {s.default_text()} | {what} |")
    return "\n".join(rows) + "\n"
