"""What every scheme shares: the build context, the build result, the registry entry, JSON round-trip."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, get_args

from quantsweep.data.calibration import CalibSet
from quantsweep.errors import QuantsweepError

__all__ = ["BuildContext", "BuildResult", "InputGrid", "Scheme", "SchemeMethods", "SchemeSpec", "SchemeTraits", "bits_traits",
           "check_input_grid", "check_weight_fields", "eight_bit_layers", "scheme_to_dict"]


@dataclass(frozen=True)
class BuildContext:
    """Inputs of a candidate build.

    Attributes:
        fp32_onnx: the FP32 baseline ONNX (the graph being quantized and deployed).
        source_pt: the Ultralytics checkpoint it came from, when there is one (Brevitas needs it).
        calib: calibration images (disjoint from the evaluation subset).
        work_dir: scratch folder for this build (intermediate files, calibration arrays).
        trust_checkpoint: the user allowed ``source_pt`` to be fully unpickled.
    """

    fp32_onnx: Path
    source_pt: Path | None
    calib: CalibSet
    work_dir: Path
    trust_checkpoint: bool = False


@dataclass
class BuildResult:
    """What a scheme's ``build`` produced, before graph hygiene and bookkeeping."""

    model_path: Path
    tool: str
    tool_version: str
    settings: dict[str, Any] = field(default_factory=dict)
    kept_float: dict[str, str] = field(default_factory=dict)  # node -> why


@dataclass(frozen=True)
class SchemeTraits:
    """What the sweep reads of a scheme, declared by the scheme itself (nothing is probed for).

    Attributes:
        label: the table's precision column: ``int8``, ``fp8``, ``w4a16 (weight-only)``, ``w4a8``...
        suffix: the model file it builds: ``.onnx``, or ``.xml`` (OpenVINO IR, its ``.bin`` beside it).
        k_keeps: what its K set keeps out of low precision: ``float`` layers, or ``8-bit`` weights.
        purpose: ``speed`` (judged by ``--budget``, must run faster than FP32) or ``size`` (a 4-bit file,
            judged by its own budget; its K search buys accuracy back with 8-bit convs).
        budget: the :class:`~quantsweep.sweep.config.SweepConfig` field whose budget judges it.
        fp16_by_tool: its tool makes the ``fp16`` float dtype itself (else ModelOpt's AutoCast after the build).
    """

    label: str
    suffix: str = ".onnx"
    k_keeps: str = "float"
    purpose: str = "speed"
    budget: str = "budget"
    fp16_by_tool: bool = False


def bits_traits(weight_bits: int, act_bits: int | None, **kw: Any) -> SchemeTraits:
    """The traits of a scheme named by its bits: ``w4a16 (weight-only)`` / ``w4a8``; 4-bit weights are for size,
    judged by ``w4_budget`` (``w4a8_budget`` with 8-bit activations)."""
    four = weight_bits == 4
    return SchemeTraits(label=f"w{weight_bits}a{act_bits}" if act_bits else f"w{weight_bits}a16 (weight-only)",
                        purpose="size" if four else "speed",
                        budget=("w4a8_budget" if act_bits else "w4_budget") if four else "budget", **kw)


class Scheme(Protocol):
    """A quantization scheme: a frozen dataclass with a derived name, its traits and a ``build`` verb."""

    method: ClassVar[str]  # the quantizer behind the scheme class (the table's "scheme" column)
    precision: ClassVar[str]
    k: int
    head_policy: bool
    float_dtype: str
    registry: str  # the registry entry that made it ("" when built by hand)

    @property
    def name(self) -> str: ...

    @property
    def traits(self) -> SchemeTraits: ...

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult: ...

    def after_clean(self, path: Path, settings: dict[str, Any]) -> None:
        """Its own last pass over the cleaned ONNX file (most schemes: none)."""
        ...

    def ranking_twin(self) -> Scheme:
        """The scheme whose ONNX file ONNX Runtime ranks for it (itself, unless it builds another format)."""
        ...


class SchemeMethods:
    """The protocol's methods most schemes share; a scheme dataclass inherits it and overrides what differs."""

    def after_clean(self, path: Path, settings: dict[str, Any]) -> None:
        return None

    def ranking_twin(self) -> Any:
        return self


@dataclass(frozen=True)
class SchemeSpec:
    """One registry entry, declared next to its scheme class: everything the sweep needs to know.

    Attributes:
        name: the registry name (``int8``, ``w4a16``, ...).
        cls: the scheme's frozen dataclass.
        preset: field values this entry fixes (``{"weights": "uint8"}``).
        description: one line for ``quantsweep schemes``.
        k_sets: the scheme can keep the K most sensitive nodes in float (and be ranked).
        default: part of the default sweep.
        onnx_only: registry name to build instead when the model has no PyTorch checkpoint.
        needs: Python modules its build imports; ``extra`` is the install extra that brings them.
    """

    name: str
    cls: type
    description: str
    preset: Mapping[str, Any] = field(default_factory=dict)
    k_sets: bool = False
    default: bool = False
    onnx_only: str | None = None
    needs: tuple[str, ...] = ()
    extra: str | None = None

    def make(self, **overrides: Any) -> Any:
        """The scheme with this entry's preset, ``overrides`` and its registry name set.

        Raises:
            QuantsweepError: a field the scheme does not have, or an invalid value.
        """
        valid = {f.name for f in dataclasses.fields(self.cls)} - {"registry"}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise QuantsweepError(f"invalid setting for scheme {self.name!r}: {', '.join(bad)}",
                                  f"{self.name} accepts: {', '.join(sorted(valid))}")
        return self.cls(**{**self.preset, **overrides, "registry": self.name})

    def missing(self) -> QuantsweepError | None:
        """Why this scheme cannot be built here (a module of its extra is not installed), or None."""
        import importlib.util

        absent = [m for m in self.needs if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return QuantsweepError(f"scheme {self.name} needs {', '.join(absent)}, which is not installed",
                               f"pip install 'quantsweep[{self.extra}]'")


def eight_bit_layers(convs: Sequence[tuple[str, int, bool]]) -> dict[str, str]:
    """The convs a 4-bit scheme keeps at 8 bits, each with its reason (the ``keep_8bit`` rule).

    Args:
        convs: ``(name, groups, is_final_prediction)`` for every conv, in network order.

    Returns:
        The first two convs (the stem sees the image's few channels), depthwise convs (nine
        weights per channel), and the head's final prediction convs.
    """
    keep = {name: "stem conv (sees the image's few channels)" for name, _, _ in convs[:2]}
    keep.update({name: "depthwise conv (9 weights per channel)" for name, groups, _ in convs if groups > 1})
    keep.update({name: "final prediction conv of the head" for name, _, pred in convs if pred})
    return keep


def check_float_dtype(scheme: Any) -> None:
    """``float_dtype``: the precision of everything left unquantized (fp16 for GPU deployment)."""
    if scheme.float_dtype not in ("fp32", "fp16"):
        raise QuantsweepError(f"unknown float dtype {scheme.float_dtype!r}", "use fp32 or fp16")


#: where a scheme's input quantizer goes: on the pixel grid, or where calibration put it (:mod:`.input_grid`)
InputGrid = Literal["pixels", "calibrated"]


def check_input_grid(scheme: Any) -> None:
    """``input_grid``: the input quantizer on the pixel grid (``pixels``) or as calibrated (``calibrated``)."""
    if scheme.input_grid not in get_args(InputGrid):
        raise QuantsweepError(f"input_grid must be pixels or calibrated (got {scheme.input_grid!r})",
                              "use pixels (exact for /255 inputs)")


def fp16_suffix(scheme: Any) -> str:
    return "-fp16" if scheme.float_dtype == "fp16" else ""


def check_weight_fields(scheme: Any, k_ok: bool = False) -> None:
    """Validation shared by the weight-quantizing schemes (Brevitas and graph weight-only);
    ``k_ok``: the scheme takes K (the K most sensitive layers kept at 8 bits)."""
    if scheme.weight_bits not in (4, 8):
        raise QuantsweepError(f"weight_bits must be 4 or 8 (got {scheme.weight_bits})", "use 4 or 8")
    if scheme.weight_scale not in ("max", "mse"):
        raise QuantsweepError(f"weight_scale must be max or mse (got {scheme.weight_scale!r})", "use max or mse")
    if scheme.keep_8bit not in ("stem+depthwise+predictions", "none"):
        raise QuantsweepError(f"keep_8bit must be 'stem+depthwise+predictions' or 'none' (got {scheme.keep_8bit!r})",
                              "use the default")
    check_float_dtype(scheme)
    if scheme.k and not k_ok:
        raise QuantsweepError(f"K={scheme.k} is not supported for {scheme.name}",
                              "use K-sets with the int8, int8-trt, int8-ov, fp8 and w4a16-graph schemes")


def scheme_to_dict(scheme: Any) -> dict[str, Any]:
    """``{"method": ..., <fields>}``: the form stored in scheme JSON and read back by the registry.

    The registry name is not part of it: it says where a scheme came from, not what it builds.
    (In the sweep a *family* is a registry name and its K variants; a *method* is the scheme class.)
    """
    return {"method": scheme.method, **{k: v for k, v in dataclasses.asdict(scheme).items() if k != "registry"}}
