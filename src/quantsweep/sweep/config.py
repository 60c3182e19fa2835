"""The sweep's configuration: one dataclass, resolved CLI > YAML > defaults, validated once.

Example:
    >>> cfg = SweepConfig.resolve(cli={"ks": (0, 5)})
    >>> cfg.ks
    (0, 5)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from quantsweep.demo import DEFAULT_DEMO, check_demo
from quantsweep.errors import QuantsweepError, did_you_mean, first_line
from quantsweep.schemes import DEFAULT_SCHEMES, REGISTRY, canonical_name, suggest
from quantsweep.schemes.base import SchemeTraits

__all__ = ["SweepConfig", "field_kind"]



def field_kind(field: dataclasses.Field[Any]) -> str:
    """How a setting's value is read from YAML or the command line, from its declared type: ``bool``,
    ``int``, ``float``, ``str``, ``path``, ``list`` (comma-separated) or ``int-list``."""
    text = str(field.type)
    if "tuple" in text:
        return "int-list" if "tuple[int" in text else "list"
    for kind, word in (("bool", "bool"), ("path", "Path"), ("int", "int"), ("float", "float")):
        if word in text:
            return kind
    return "str"


@dataclass(frozen=True)
class SweepConfig:
    """Everything that decides a sweep's results (timings aside). ``None`` model = the demo."""

    model: Path | None = None
    demo: str = DEFAULT_DEMO  # the packaged demo detector when model is None (quantsweep.demo.DEMOS)
    images: Path | None = None
    annotations: Path | None = None
    data: Path | None = None
    max_images: int = 100  # the search subset: every candidate is scored on these
    image_ids: Path | None = None
    calib_count: int = 64  # calibration images (the first N of --calib-dir)
    calib_dir: Path | None = None
    calib_annotations: Path | None = None
    imgsz: int | None = None  # export size for a .pt (default: 320 for the demo, 640 otherwise)
    schemes: tuple[str, ...] = DEFAULT_SCHEMES  # declared by each scheme's registry entry
    grid: bool = False  # True: the fixed grid (every scheme at every K of ks); False: the search per target
    ks: tuple[int, ...] = (0, 5, 10, 20)  # the grid's K-set (--grid only)
    max_evals: int = 6  # the search's cap: K>0 probes (build + score + time) per run
    backends: tuple[str, ...] | None = None  # None = every backend available here
    batches: tuple[int, ...] = (1,)
    budget: float = 1.0  # max mAP50-95 loss in points for the recommendation
    w4_budget: float = 2.0  # 4-bit candidates (for size): max loss in points; their 8-bit convs are searched for it
    # W4A8's own: its int8 activations cost on top of the 4-bit weights (INT8 alone: -0.8 on a real YOLOv5n)
    w4a8_budget: float = 3.5
    # the 4-bit *size* search (8-bit convs searched against --w4-budget / --w4a8-budget, then confirmed): off by
    # default, since on a runtime that computes 4-bit weights at 8 bits or in float it buys file size, not speed;
    # on when asked (``--size``, or either 4-bit budget given on the command line) or when the target runtime
    # executes 4-bit weights in 4-bit compute layers. The 4-bit K=0 candidates are in the table either way.
    size: bool = False
    target_backend: str | None = None
    # calibration images the rankings are measured on: on 2 the order of the 10th-30th nodes is noise
    # (real YOLOv5n W4A16 K=12/K=20: -1.74/-1.19 ranked on 2 images, -0.89/-1.22 on 8, -1.09/-0.61 on 16)
    sensitivity_images: int = 8
    sensitivity_probe_top: int = 32  # nodes measured exactly after the local-error screen; 0 = all
    bench_seconds: float = 5.0
    bench_warmup: int = 5
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    confirm_images: int = 400  # held-out confirmation pool for the finalists (0: decide on the search subset)
    confirm_step: int = 100  # confirmation images added per round until the verdict is decided
    finalists: int = 3  # fastest candidates within the budget on the search subset, re-scored
    bootstrap: int = 2000  # paired resamples over images for ΔmAP's interval and standard error (exact, vectorised)
    alpha: float = 0.05  # chance of confirming a pick whose true loss exceeds the budget (all looks, all finalists)
    alpha_spending: str = "obf"  # how alpha is spent over the confirmation looks: obf (O'Brien-Fleming) | pocock
    seed: int = 0
    gallery: int = 12  # image pairs (FP32 | candidate) the report shows where the candidate changed most; 0: none
    gallery_conf: float = 0.25  # score threshold of the boxes drawn and counted in the gallery
    profile_runs: int = 50  # calls each per-node profile (FP32, the possible picks) averages; 0: no profile
    jobs: int = 1
    executor: str = "local"  # local (this machine: --jobs processes) | ray (a Ray cluster)
    ray_address: str | None = None  # auto | HOST:PORT | ray://HOST:PORT; None: a private local Ray
    eval_shards: int = 1  # one candidate's evaluation split into this many image shards (parallel on Ray)
    bench_on: tuple[str, ...] | None = None  # BACKEND=RESOURCE: that backend is timed only on nodes with RESOURCE
    shared_dir: bool = False  # ray: run folder and data on a path every node sees (else files are shipped)
    out: Path = Path("runs")
    ablation: bool = True  # also build the int8 candidate without the head policy
    trust_checkpoint: bool = False  # fully unpickle a .pt that references more than model classes

    def __post_init__(self) -> None:
        object.__setattr__(self, "schemes", tuple(canonical_name(s) for s in self.schemes))
        for s in self.schemes:
            if s not in REGISTRY:
                raise QuantsweepError(f"unknown scheme {s!r}; {suggest(s)}".strip(),
                                      f"choose from {', '.join(REGISTRY)}")
        check_demo(self.demo)
        for k in self.ks:
            if not isinstance(k, int) or isinstance(k, bool) or k < 0:
                raise QuantsweepError(f"K must be a non-negative integer (got {k!r})", "pass e.g. --ks 0,5,10,20")
        if self.backends is not None:
            from quantsweep.runtimes import check_runtimes

            check_runtimes(self.backends)
        for name in ("confirm_images", "finalists"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise QuantsweepError(f"{name} must be 0 or a positive integer (got {value!r})",
                                      "use 0 to turn confirmation off", name)
        if not isinstance(self.profile_runs, int) or isinstance(self.profile_runs, bool) or self.profile_runs < 0:
            raise QuantsweepError(f"profile_runs must be 0 or a positive integer (got {self.profile_runs!r})",
                                  "use e.g. --profile-runs 50, or 0 for no profile", "profile_runs")
        if not isinstance(self.max_evals, int) or isinstance(self.max_evals, bool) or self.max_evals < 0:
            raise QuantsweepError(f"max_evals must be 0 or a positive integer (got {self.max_evals!r})",
                                  "use e.g. --max-evals 8 (0: keep every placement at K=0)", "max_evals")
        if self.executor not in ("local", "ray"):
            raise QuantsweepError(f"unknown executor {self.executor!r}", "use --executor local or ray", "executor")
        for binding in self.bench_on or ():
            backend, _, resource = binding.partition("=")
            if not backend or not resource:
                raise QuantsweepError(f"bench_on entry {binding!r} is not BACKEND=RESOURCE",
                                      "use e.g. --bench-on openvino=openvino_node", "bench_on")
        positive = {"max_images": self.max_images, "eval_shards": self.eval_shards, "calib_count": self.calib_count, "jobs": self.jobs,
                    "confirm_step": self.confirm_step,
                    "sensitivity_images": self.sensitivity_images}
        if not isinstance(self.sensitivity_probe_top, int) or self.sensitivity_probe_top < 0:
            raise QuantsweepError(f"sensitivity_probe_top must be 0 (all) or a positive integer "
                                  f"(got {self.sensitivity_probe_top!r})", "use e.g. 32, or 0 to probe every node",
                                  "sensitivity_probe_top")
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise QuantsweepError(f"{name} must be a positive integer (got {value!r})", "use a positive integer",
                                      name)
        if not 0.0 < self.alpha < 0.5:
            raise QuantsweepError(f"alpha must be in (0, 0.5) (got {self.alpha})", "use e.g. --alpha 0.05", "alpha")
        if self.alpha_spending not in ("obf", "pocock"):
            raise QuantsweepError(f"unknown alpha_spending {self.alpha_spending!r}", "use obf or pocock",
                                  "alpha_spending")
        if not isinstance(self.bootstrap, int) or self.bootstrap < 200:
            raise QuantsweepError(f"bootstrap must be at least 200 resamples (got {self.bootstrap!r})",
                                  "use the default 2000 (a 100-image pair takes well under a second)", "bootstrap")
        for key, example in (("w4_budget", 2.0), ("w4a8_budget", 3.5)):
            if getattr(self, key) < 0:
                raise QuantsweepError(f"{key} must be >= 0 mAP points (got {getattr(self, key)})",
                                      f"use e.g. {key} {example}", key)
        if self.budget < 0:
            raise QuantsweepError(f"budget must be >= 0 mAP points (got {self.budget})", "use e.g. budget 1.0", "budget")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def resolve(cls, cli: dict[str, Any] | None = None, yaml_path: Path | None = None) -> SweepConfig:
        """CLI values (non-None) over YAML values over defaults; unknown YAML keys are errors."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            values.update(cls._read_yaml(Path(yaml_path)))
        given = {k: v for k, v in (cli or {}).items() if v is not None}
        if any(k in given for k in ("w4_budget", "w4a8_budget")) and "size" not in given:
            given["size"] = True  # a 4-bit budget given on the command line asks for the size decision
        values.update(given)
        return cls(**cls._coerce(values))

    @classmethod
    def _read_yaml(cls, path: Path) -> dict[str, Any]:
        import yaml

        if not path.is_file():
            raise QuantsweepError(f"config file not found: {path}", "check the --config path")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise QuantsweepError(f"config file {path} is not valid YAML ({first_line(exc)})",
                                  "fix the YAML syntax") from None
        if not isinstance(data, dict):
            raise QuantsweepError(f"config file {path} must be a mapping of settings", "see quantsweep run --dry-run")
        names = cls.field_names()
        for key in data:
            if key not in names:
                raise QuantsweepError(f"{path}: unknown setting {key!r}; {did_you_mean(key, names)}".strip(),
                                      "see the keys written by quantsweep run --dry-run")
        return data

    @staticmethod
    def _coerce(values: dict[str, Any]) -> dict[str, Any]:
        kind = {f.name: field_kind(f) for f in dataclasses.fields(SweepConfig)}  # from each field's declared type
        out = dict(values)
        for k, v in values.items():
            if kind.get(k) == "path" and v is not None:
                out[k] = Path(v)
            elif kind.get(k) in ("list", "int-list") and v is not None:
                out[k] = tuple(v) if not isinstance(v, str) else tuple(x.strip() for x in v.split(",") if x.strip())
                if kind[k] == "int-list":
                    try:
                        out[k] = tuple(int(x) if not isinstance(x, int) else x for x in out[k])
                    except ValueError:
                        raise QuantsweepError(f"{k} must be integers (got {v!r})", "use e.g. 0,5,10,20", k) from None
        return out

    def budget_for(self, traits: SchemeTraits) -> float:
        """The accuracy budget (points) that judges a scheme with these traits: ``budget`` for speed, the
        4-bit family's own (``w4_budget``, ``w4a8_budget``) for size."""
        return {"budget": self.budget, "w4_budget": self.w4_budget, "w4a8_budget": self.w4a8_budget}[traits.budget]

    def bench_resources(self, backend: str) -> dict[str, float] | None:
        """The cluster resource ``backend`` is bound to by ``bench_on`` (None: timed by the driver)."""
        for binding in self.bench_on or ():
            name, _, resource = binding.partition("=")
            if name.strip() == backend:
                return {resource.strip(): 1.0}
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for YAML/JSON (paths as strings, tuples as lists)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
            elif isinstance(v, tuple):
                d[k] = list(v)
        return d

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def result_key(self) -> dict[str, Any]:
        """The settings that decide results (not where they are written, nor parallelism)."""
        d = self.to_dict()
        for k in ("out", "jobs", "bench_seconds", "bench_warmup", "trust_checkpoint", "executor", "ray_address",
                  "eval_shards", "bench_on", "shared_dir"):
            d.pop(k, None)
        return d
