"""Quantization schemes: one frozen dataclass each, declared with its registry entries.

Adding a scheme is one new module here (the dataclass with ``name``/``build`` and a ``SPECS``
tuple of :class:`SchemeSpec`) plus one line in :data:`_MODULES`. Everything else — the default
sweep, which schemes take K-sets, the ONNX-only fallback, the extra a build needs — is read
from the specs.

Example:
    >>> make_scheme("int8-qdq", k=5).name
    'int8-qdq-k5'

A scheme has one name: its registry name is the candidate's name at K=0 and its file's stem
(a test checks). The names used before 0.9 are accepted as :data:`ALIASES` with a one-line notice.
"""

from __future__ import annotations

import sys
from typing import Any

from quantsweep.errors import QuantsweepError, did_you_mean
from quantsweep.schemes import brevitas_qcdq, graph_weight_only, modelopt_qdq, nncf_int8, ort_int8
from quantsweep.schemes.base import BuildContext, BuildResult, Scheme, SchemeSpec, scheme_to_dict

__all__ = ["ALIASES", "DEFAULT_SCHEMES", "canonical_name", "suggest", "K_SCHEMES", "REGISTRY", "BuildContext", "BuildResult", "Scheme", "SchemeSpec",
           "make_scheme", "register", "scheme_from_dict", "scheme_to_dict", "spec"]

# one line per scheme module, in the order `quantsweep schemes` lists them
_MODULES = (ort_int8, modelopt_qdq, nncf_int8, brevitas_qcdq, graph_weight_only)


def register(specs: tuple[SchemeSpec, ...], registry: dict[str, SchemeSpec] | None = None) -> dict[str, SchemeSpec]:
    """Add ``specs`` to ``registry`` (a new dict when None); a name registered twice is an error."""
    out = {} if registry is None else registry
    for s in specs:
        if s.name in out:
            raise QuantsweepError(f"scheme {s.name!r} is registered twice", "give each registry entry its own name")
        out[s.name] = s
    return out


REGISTRY: dict[str, SchemeSpec] = {}
for _module in _MODULES:
    register(_module.SPECS, REGISTRY)
#: names used before the registry name became the candidate's name -> today's name
ALIASES: dict[str, str] = {"int8": "int8-qdq", "int8-u8w": "int8-qdq-u8w", "int8-nohead": "int8-qdq-nohead",
                           "fp8": "fp8-qdq", "w4a16": "w4a16-mse", "w4a8": "w4a8-mse", "w4a16-graph": "w4a16-graph-gptq",
                           "w4a8-graph": "w4a8-graph-gptq", "w4a16-graph-rtn": "w4a16-graph-mse"}
_NOTIFIED: set[str] = set()


def canonical_name(name: str) -> str:
    """``name``, or today's name for an old alias (saying so once per process, on stderr)."""
    if name in ALIASES and name not in REGISTRY:
        new = ALIASES[name]
        if name not in _NOTIFIED:
            _NOTIFIED.add(name)
            print(f"quantsweep: note: scheme {name!r} is now called {new!r} (the name of its candidate file); "
                  "the old name still works", file=sys.stderr)
        return new
    return name


def suggest(name: str, registry: dict[str, SchemeSpec] | None = None) -> str:
    """A did-you-mean among today's names, matching old names too (``imt8`` -> ``int8-qdq``)."""
    reg = REGISTRY if registry is None else registry
    hint = did_you_mean(name, [*reg, *(a for a in ALIASES if ALIASES[a] in reg)])
    for old, new in ALIASES.items():
        hint = hint.replace(f"{old!r}", f"{new!r}")
    return hint


DEFAULT_SCHEMES: tuple[str, ...] = tuple(n for n, s in REGISTRY.items() if s.default)
K_SCHEMES: frozenset[str] = frozenset(n for n, s in REGISTRY.items() if s.k_sets)


def spec(name: str, registry: dict[str, SchemeSpec] | None = None) -> SchemeSpec:
    """The registry entry called ``name``.

    Raises:
        QuantsweepError: unknown name (with a did-you-mean).
    """
    reg = REGISTRY if registry is None else registry
    name = canonical_name(name) if registry is None else name
    if name not in reg:
        raise QuantsweepError(f"unknown scheme {name!r}; {suggest(name, reg)}".strip(),
                              f"choose from {', '.join(reg)} (quantsweep schemes)")
    return reg[name]


def make_scheme(name: str, onnx_only: bool = False, **overrides: Any) -> Any:
    """Build the scheme registered as ``name`` (with field overrides such as ``k=5``).

    Args:
        name: a key of :data:`REGISTRY`.
        onnx_only: the model has no PyTorch checkpoint: use the entry's ONNX-only fallback.
        overrides: dataclass fields to set.

    Raises:
        QuantsweepError: unknown name (with a did-you-mean) or invalid fields.
    """
    entry = spec(name)
    if onnx_only and entry.onnx_only:
        entry = spec(entry.onnx_only)
    return entry.make(**overrides)


def scheme_from_dict(d: dict[str, Any], registry_name: str = "") -> Any:
    """Inverse of :func:`scheme_to_dict` (``registry_name`` restores where it came from)."""
    fields = dict(d)
    method = fields.pop("method", None)
    method = fields.pop("family", method)  # older records named the method "family"
    classes = {s.cls.method: s.cls for s in REGISTRY.values()}  # type: ignore[attr-defined]
    if method not in classes:
        raise QuantsweepError(f"unknown scheme method {method!r}", f"expected one of {', '.join(classes)}")
    return classes[method](**fields, registry=registry_name)
