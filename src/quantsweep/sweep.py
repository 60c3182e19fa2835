"""The sweep's stages, in order, driven through a :class:`quantsweep.runner.Runner`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantsweep.config import SweepConfig
from quantsweep.errors import QuantsweepError
from quantsweep.files import atomic_write_json

if TYPE_CHECKING:
    from quantsweep.data import Dataset
    from quantsweep.runner import RunResult, Runner

__all__ = ["execute", "model_label", "registry_name", "resolve_inputs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    model: Path
    pt: Path | None
    eval_ds: Dataset
    calib_ds: Dataset
    imgsz: int


def model_label(cfg: SweepConfig) -> str:
    return "demo" if cfg.model is None else cfg.model.stem


def resolve_inputs(cfg: SweepConfig) -> Inputs:
    """The model, evaluation dataset and calibration dataset a config names (demo by default)."""
    from quantsweep.data import coco2017_paths, load_dataset
    from quantsweep.demo import DEMO_IMGSZ, materialize
    from quantsweep.offline import cache_dir

    if cfg.model is not None:  # a user's model needs the user's data: check before any work
        if cfg.images is None and cfg.data is None:
            raise QuantsweepError("a --model needs its dataset", "pass --images DIR --annotations FILE, or --data ROOT")
        if cfg.calib_dir is None:
            raise QuantsweepError("no calibration images given",
                                  "pass --calib-dir with images disjoint from the evaluation subset")
    demo_dir = None
    if cfg.model is None or (cfg.images is None and cfg.data is None) or cfg.calib_dir is None:
        from quantsweep.demo import checkpoint_path
        from quantsweep.files import sha256_file

        # keyed by the checkpoint's hash, so a new packaged model never meets a stale export
        demo_dir = cache_dir() / f"demo-world-{sha256_file(checkpoint_path())[:12]}"
        materialize(demo_dir, splits=("val", "calib"))
    model = cfg.model if cfg.model is not None else demo_dir / "model.pt"  # type: ignore[operator]
    if cfg.data is not None:
        eval_ds = load_dataset(*coco2017_paths(cfg.data))
    elif cfg.images is not None:
        if cfg.annotations is None:
            raise QuantsweepError("--images needs --annotations", "pass the COCO instances JSON with --annotations")
        eval_ds = load_dataset(cfg.images, cfg.annotations)
    else:
        eval_ds = load_dataset(demo_dir / "val" / "images", demo_dir / "val" / "annotations.json")  # type: ignore[operator]
    if cfg.calib_dir is not None:
        ann = cfg.calib_annotations or cfg.calib_dir.parent / "annotations.json"
        if not ann.is_file():
            raise QuantsweepError(f"no annotations for calibration folder {cfg.calib_dir}",
                                  "pass --calib-annotations (a COCO JSON listing the calibration images)")
        calib_ds = load_dataset(cfg.calib_dir, ann)
    else:
        calib_ds = load_dataset(demo_dir / "calib" / "images", demo_dir / "calib" / "annotations.json")  # type: ignore[operator]
    pt = model if model.suffix.lower() in (".pt", ".pth") else None
    imgsz = cfg.imgsz or (DEMO_IMGSZ if cfg.model is None else 640)
    return Inputs(model, pt, eval_ds, calib_ds, imgsz)


def _plan(cfg: SweepConfig, onnx_only: bool) -> list[Any]:
    from quantsweep.schemes import K_SCHEMES, make_scheme

    plan: list[Any] = []
    for name in cfg.schemes:
        if name in K_SCHEMES:
            plan += [make_scheme(name, onnx_only=onnx_only, k=k) for k in cfg.ks]
        else:
            plan.append(make_scheme(name, onnx_only=onnx_only))
    if cfg.ablation and "int8" in cfg.schemes:
        plan.append(make_scheme("int8-nohead"))
    seen: set[str] = set()
    return [s for s in plan if not (s.name in seen or seen.add(s.name))]  # type: ignore[func-returns-value]


def registry_name(scheme: Any) -> str:
    """The registry name that builds ``scheme`` (ignoring K)."""
    from quantsweep.schemes import REGISTRY, make_scheme

    for name in REGISTRY:
        try:
            if make_scheme(name, k=scheme.k, float_dtype=getattr(scheme, "float_dtype", "fp32")) == scheme:
                return name
        except QuantsweepError:
            continue
    return scheme.family


def execute(r: Runner) -> RunResult:
    """Run every stage of the sweep in ``r``'s folder (skipping finished ones)."""
    from quantsweep.bench import available_backends
    from quantsweep.calibration import CalibSet
    from quantsweep.data import select_ids, write_ids_file
    from quantsweep.runner import RunResult, file_hash
    from quantsweep.schemes import BuildContext
    from quantsweep.source import export_onnx, inspect_onnx

    cfg = r.cfg
    inp = r.inputs if r.inputs is not None else resolve_inputs(cfg)
    cand_dir, res_dir = r.dir / "candidates", r.dir / "results"
    cand_dir.mkdir(exist_ok=True)
    res_dir.mkdir(exist_ok=True)
    plan = _plan(cfg, onnx_only=inp.pt is None)
    n_sens = len({registry_name(s) for s in plan if s.k > 0})
    n_backends = len(cfg.backends or available_backends())
    n_k0 = len({registry_name(s) for s in plan if s.k == 0} & {registry_name(s) for s in plan if s.k > 0})
    # events: baseline, K=0 builds ranked early (seen again later as skips), rankings, a build per
    # candidate, an evaluation per model, a benchmark per backend, the report
    r.on_event({"event": "plan", "steps": 1 + n_k0 + n_sens + len(plan) + len(plan) + 1 + n_backends + 1,
                "candidates": [s.name for s in plan]})
    fp32 = cand_dir / "fp32.onnx"
    r.step("baseline", {"model": file_hash(inp.model), "imgsz": inp.imgsz}, [fp32],
           lambda: export_onnx(inp.model, fp32, imgsz=inp.imgsz, head="e2e",
                               trust_checkpoint=cfg.trust_checkpoint))
    info = inspect_onnx(fp32)
    hw = info.hw or (inp.imgsz, inp.imgsz)
    ids = select_ids(inp.eval_ds, cfg.max_images, cfg.image_ids)
    calib = CalibSet.from_dataset(inp.calib_ds, cfg.calib_images, hw, ids, inp.eval_ds)
    for ids_name, values in (("subset_ids.txt", ids), ("calib_ids.txt", calib.ids)):
        if not (r.dir / ids_name).exists():
            write_ids_file(r.dir / ids_name, values)
    ctx = BuildContext(fp32, inp.pt, calib, r.dir / "work", cfg.trust_checkpoint)
    rankings = _sensitivities(r, cfg, plan, ctx)
    built = _build_and_evaluate(r, cfg, plan, ctx, inp, ids, rankings)
    benches = _benchmarks(r, cfg, built)
    rows, recommendation = _report(r, cfg, plan, built, benches, inp, ids)
    r.stage_seconds = {k: v.get("seconds", 0.0) for k, v in r.manifest["steps"].items()}
    return RunResult(r.dir, rows, recommendation, r.stage_seconds)


def _report(r: Runner, cfg: SweepConfig, plan: list[Any], built: dict[str, Any],
            benches: dict[str, dict[str, Any]], inp: Inputs, ids: list[int]) -> tuple[list[Any], dict[str, Any]]:
    """The table, plots and report: a manifest step over every result file it reads."""
    from quantsweep.results import write_outputs
    from quantsweep.runner import file_hash

    sources = sorted((r.dir / "results").glob("*.metrics.json")) + sorted((r.dir / "results").glob("*.bench.json"))
    sources += [p for p in (r.dir / "sensitivity.json",) if p.exists()]
    inputs = {"files": {str(p.relative_to(r.dir)): file_hash(p) for p in sources},
              "errors": {n: e.get("error") for n, e in built.items()},
              "decision": [cfg.budget, cfg.target_backend, cfg.bootstrap, cfg.seed]}
    res = r.dir / "results"
    outputs = [res / "summary.csv", res / "summary.md", res / "summary.json", res / "pareto.png",
               res / "k_curve.png", r.dir / "report.html"]
    out: dict[str, Any] = {}

    def make() -> None:
        out["rows"], out["recommendation"] = write_outputs(r.dir, cfg, plan, built, benches, inp.eval_ds, ids)

    r.step("report", inputs, outputs, make)
    if not out:  # finished earlier with the same inputs
        summary = json.loads((res / "summary.json").read_text())
        out["rows"], out["recommendation"] = summary["rows"], summary["recommendation"]
    return out["rows"], out["recommendation"]


def _build_task(r: Runner, scheme: Any, ctx: Any, ranking: list[dict[str, Any]] | None) -> Any:
    """The manifest step that builds ``scheme`` into ``candidates/`` (its log in ``candidates/logs``)."""
    from quantsweep.jobs import Task
    from quantsweep.quantize import materialize
    from quantsweep.runner import file_hash
    from quantsweep.schemes import scheme_to_dict

    cand_dir = r.dir / "candidates"
    inputs = {"scheme": scheme_to_dict(scheme), "fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash,
              "ranking": bool(ranking)}
    return Task(f"build:{scheme.name}", lambda: inputs,
                [cand_dir / f"{scheme.name}.onnx", cand_dir / f"{scheme.name}.scheme.json"], materialize,
                (scheme, ctx, cand_dir, ranking), cand_dir / "logs" / f"{scheme.name}.log")


def _sensitivities(r: Runner, cfg: SweepConfig, plan: list[Any], ctx: Any) -> dict[str, Any]:
    """One ranking per K-scheme family, each on that family's own fully quantized graph.

    The family's K=0 candidate is built first (its step is shared with the candidate stage)
    and ranked in place, so the ranking costs only its probes.
    """
    from quantsweep.jobs import run_chains
    from quantsweep.pipeline import compute_sensitivity
    from quantsweep.runner import file_hash

    path = r.dir / "sensitivity.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    families = sorted({registry_name(s) for s in plan if s.k > 0})
    for fam in families:
        k0 = next((s for s in plan if s.k == 0 and registry_name(s) == fam), None)
        qdq = None
        if k0 is not None:
            failures: list[BaseException] = []
            run_chains(r, [[_build_task(r, k0, ctx, None)]], 1, lambda ci, t, exc: failures.append(exc))
            if failures:
                stored[fam] = {"error": f"its K=0 candidate failed to build: {failures[0]}"}
                continue
            qdq = r.dir / "candidates" / f"{k0.name}.onnx"

        def compute(fam: str = fam, qdq: Path | None = qdq) -> None:
            with _log_to(r, f"sensitivity-{fam}"):
                result = compute_sensitivity(ctx.fp32_onnx, ctx.source_pt, ctx.calib, fam, r.dir / "work",
                                             cfg.sensitivity_images, cfg.sensitivity_probe_top, qdq)
            stored[fam] = result
            atomic_write_json(path, stored)

        try:
            r.step(f"sensitivity:{fam}", {"fp32": file_hash(ctx.fp32_onnx), "calib": ctx.calib.ids_hash,
                                          "images": cfg.sensitivity_images,
                                          "probe_top": cfg.sensitivity_probe_top,
                                          "qdq": file_hash(qdq) if qdq else None}, [path], compute)
        except (QuantsweepError, Exception) as exc:  # noqa: BLE001 - recorded as rows' errors
            stored[fam] = {"error": str(exc)}
    return stored


def _log_to(r: Runner, name: str) -> Any:
    from quantsweep.runner import _capture_fds

    return _capture_fds(r.dir / "candidates" / "logs" / f"{name}.log")


def _build_and_evaluate(r: Runner, cfg: SweepConfig, plan: list[Any], ctx: Any, inp: Inputs,
                        ids: list[int], rankings: dict[str, Any]) -> dict[str, Any]:
    """Build and evaluate every candidate: one chain (build, eval) each, ``cfg.jobs`` at a time."""
    from quantsweep.evaluate import EvalSettings, evaluate
    from quantsweep.jobs import Task, effective_jobs, run_chains
    from quantsweep.runner import file_hash

    settings = EvalSettings(conf=cfg.conf, iou=cfg.iou, max_det=cfg.max_det, provider="cpu")
    cand_dir, res_dir = r.dir / "candidates", r.dir / "results"
    built: dict[str, Any] = {}
    chains: list[list[Task]] = []
    owners: list[str] = []
    for name, scheme in [("fp32", None)] + [(s.name, s) for s in plan]:
        entry: dict[str, Any] = {"name": name, "scheme": scheme, "error": None}
        built[name] = entry
        onnx_path, metrics = cand_dir / f"{name}.onnx", res_dir / f"{name}.metrics.json"
        chain: list[Task] = []
        if scheme is not None:
            fam, ranking = registry_name(scheme), None
            if scheme.k > 0:
                sens = rankings.get(fam, {})
                if "ranking" not in sens:
                    entry["error"] = f"no sensitivity ranking for {fam}: {sens.get('error', 'not computed')}"
                    continue
                ranking = sens["ranking"]
            chain.append(_build_task(r, scheme, ctx, ranking))
        chain.append(Task(f"eval:{name}", lambda o=onnx_path: {"onnx": file_hash(o), "ids": ids,
                                                               "settings": str(settings)},
                          [metrics], evaluate, (onnx_path, inp.eval_ds, ids, settings, metrics)))
        entry["onnx"] = onnx_path
        chains.append(chain)
        owners.append(name)

    def failed(ci: int, task: Task, exc: BaseException) -> None:
        what = "build failed" if task.step.startswith("build:") else "evaluation failed"
        built[owners[ci]]["error"] = f"{what}: {exc}"
        if task.step.startswith("build:"):
            built[owners[ci]].pop("onnx", None)

    jobs, why = effective_jobs(cfg.jobs)
    if why:
        r.on_event({"event": "note", "message": why})
    run_chains(r, chains, jobs, failed)
    for name in owners:
        metrics = res_dir / f"{name}.metrics.json"
        if built[name]["error"] is None and metrics.exists():
            built[name]["metrics"] = json.loads(metrics.read_text())
    return built


def _benchmarks(r: Runner, cfg: SweepConfig, built: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from quantsweep.bench import BenchSettings, available_backends, benchmark
    from quantsweep.runner import file_hash

    res_dir = r.dir / "results"
    models = [(n, e["onnx"]) for n, e in built.items() if e.get("onnx") and e.get("error") is None]
    out: dict[str, dict[str, Any]] = {}
    backends = cfg.backends or tuple(available_backends())
    for backend in backends:
        outputs = [res_dir / f"{n}.{backend}.bench.json" for n, _ in models]

        def measure(backend: str = backend, outputs: list[Path] = outputs) -> None:
            settings = BenchSettings(backends=(backend,), batches=cfg.batches, warmup=cfg.bench_warmup,
                                     seconds=cfg.bench_seconds)
            res = benchmark(models, settings, r.dir / "work" / "bench")
            for (n, _), path in zip(models, outputs):
                rows = [row for row in res["rows"] if row["candidate"] == n]
                atomic_write_json(path, {**{k: v for k, v in res.items() if k != "rows"}, "rows": rows})

        try:
            r.step(f"bench:{backend}", {"models": {n: file_hash(p) for n, p in models},
                                        "batches": list(cfg.batches), "seconds": cfg.bench_seconds}, outputs, measure)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed backend is a row
            out[backend] = {"error": str(exc)}
            continue
        out[backend] = {n: json.loads(p.read_text()) for (n, _), p in zip(models, outputs)}
    return out
