"""What a sweep runs on: the model, the evaluation dataset and the calibration images.

``SweepConfig.model is None`` means the packaged demo (its world is written once into the cache).
Everything is checked here, before a run folder is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import Dataset
from quantsweep.data.folder import ImageFolder
from quantsweep.errors import QuantsweepError
from quantsweep.sweep.config import SweepConfig

__all__ = ["Inputs", "model_label", "resolve_inputs"]


@dataclass(frozen=True)
class Inputs:
    """The checked inputs of a sweep. Calibration is a COCO split (``calib_ds``) or a plain folder."""

    model: Path
    pt: Path | None
    eval_ds: Dataset
    calib_ds: Dataset | None
    calib_dir: Path | None
    imgsz: int

    def calib_set(self, count: int, hw: tuple[int, int], eval_ids: list[int]) -> CalibSet:
        """The first ``count`` calibration images, checked disjoint from ``eval_ids``."""
        if self.calib_ds is not None:
            return CalibSet.from_dataset(self.calib_ds, count, hw, eval_ids, self.eval_ds)
        assert self.calib_dir is not None
        return CalibSet.from_folder(self.calib_dir, count, hw, eval_ids, self.eval_ds)


def model_label(cfg: SweepConfig) -> str:
    """The run folder's parent name: the model file's stem, ``demo`` (or ``demo-<name>`` for another demo)."""
    from quantsweep.demo import DEFAULT_DEMO

    if cfg.model is not None:
        return cfg.model.stem
    return "demo" if cfg.demo == DEFAULT_DEMO else f"demo-{cfg.demo}"


def resolve_inputs(cfg: SweepConfig) -> Inputs:
    """The model, evaluation dataset and calibration dataset a config names (demo by default)."""
    from quantsweep.data.coco import coco2017_paths, load_dataset
    from quantsweep.demo import DEMO_IMGSZ, materialize
    from quantsweep.offline import cache_dir

    if cfg.model is not None:  # a user's model needs the user's data: check before any work
        if cfg.images is None and cfg.data is None:
            raise QuantsweepError("a model needs its dataset", "give images and annotations, or data (a COCO 2017 root)",
                                  "model")
        if cfg.calib_dir is None:
            raise QuantsweepError("no calibration images given",
                                  "give calib_dir: a folder of images disjoint from the evaluation subset", "calib_dir")
    demo_dir = None
    if cfg.model is None or (cfg.images is None and cfg.data is None) or cfg.calib_dir is None:
        from quantsweep.demo import checkpoint_path
        from quantsweep.files import sha256_file

        # keyed by the checkpoint's hash, so a new packaged model never meets a stale export
        demo_dir = cache_dir() / f"demo-world-{sha256_file(checkpoint_path(cfg.demo))[:12]}"
        materialize(demo_dir, splits=("val", "calib"), demo=cfg.demo)
    model = cfg.model if cfg.model is not None else demo_dir / "model.pt"  # type: ignore[operator]
    if cfg.data is not None:
        eval_ds = load_dataset(*coco2017_paths(cfg.data))
    elif cfg.images is not None:
        if cfg.annotations is None:
            raise QuantsweepError("an images folder needs its annotations file",
                                  "give the COCO instances JSON as annotations", "annotations")
        eval_ds = load_dataset(cfg.images, cfg.annotations)
    else:
        eval_ds = load_dataset(demo_dir / "val" / "images", demo_dir / "val" / "annotations.json")  # type: ignore[operator]
    calib_ds, calib_dir = None, cfg.calib_dir
    if cfg.calib_dir is None:
        calib_ds = load_dataset(demo_dir / "calib" / "images", demo_dir / "calib" / "annotations.json")  # type: ignore[operator]
    elif cfg.calib_annotations is not None:
        calib_ds = load_dataset(cfg.calib_dir, cfg.calib_annotations)
    elif (cfg.calib_dir.parent / "annotations.json").is_file():  # the demo's split layout
        calib_ds = load_dataset(cfg.calib_dir, cfg.calib_dir.parent / "annotations.json")
    else:  # a plain folder of images: calibration reads no label
        ImageFolder.scan(cfg.calib_dir)  # refuse a missing or empty folder before any work
    pt = model if model.suffix.lower() in (".pt", ".pth") else None
    imgsz = cfg.imgsz or (DEMO_IMGSZ if cfg.model is None else 640)
    return Inputs(model, pt, eval_ds, calib_ds, calib_dir, imgsz)
