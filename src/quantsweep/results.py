"""The sweep's result types, below every stage that makes or reads them: a table row, the decision,
and the plain-text forms of a verdict that the decision and the report both print.

:mod:`quantsweep.decide` makes :class:`Row` and :class:`Decision` values; :mod:`quantsweep.report`
presents them (the table's CSV/Markdown in :mod:`quantsweep.report.table`). Nothing here imports
a stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self

from quantsweep.ledger import CandidateScheme, Ledger

__all__ = ["COLLAPSE_FRACTION", "COLLAPSE_MIN_AP", "COLLAPSE_MIN_INSTANCES", "COLLAPSE_POINTS", "Decision", "JsonRecord", "Row",
           "blame", "collapse_verdict", "collapsed_classes", "confirms_within", "pareto_flags", "points",
           "precision_label", "summary_rows", "tested", "what_they_confirm"]


def points(delta: float, low: float | None = None, high: float | None = None, unit: str = "") -> str:
    """A ΔmAP fraction in signed points, with its interval when given: ``-0.60 points [-1.00, -0.22]``."""
    text = f"{100 * delta:+.2f}{unit}"
    return text if low is None or high is None else f"{text} [{100 * low:+.2f}, {100 * high:+.2f}]"


def tested(c: dict[str, Any], budget_points: float) -> str:
    """A held-out verdict as it was tested: Δ, the design's one-sided lower bound ``Δ − c·SE`` against
    the budget, and ``z = (Δ + budget)/SE`` against its boundary; the two-sided 95 % interval follows,
    labelled descriptive (it is not what the verdict tested).

    Example:
        >>> tested({"delta": -0.0051, "bound": -0.0165, "looks": [{"z": 0.91, "critical": 2.13}],
        ...         "low": -0.01, "high": 0.01}, 1.0)
        'Δ -0.51, tested bound -1.65 < -1.00 (z 0.91 < 2.13); descriptive 95 % [-1.00, +1.00]'
    """
    look = (c.get("looks") or [{}])[-1]
    bound = c.get("bound")
    if bound is None or "z" not in look:
        return f"Δ {points(c['delta'], c.get('low'), c.get('high'))}"
    ok = look["z"] >= look["critical"]
    sign = "≥" if ok else "<"
    text = (f"Δ {100 * c['delta']:+.2f}, tested bound {100 * bound:+.2f} {sign} {-budget_points:+.2f} "
            f"(z {look['z']:.2f} {sign} {look['critical']:.2f})")
    if c.get("low") is not None and c.get("high") is not None:
        text += f"; descriptive 95 % [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]"
    return text


def confirms_within(c: dict[str, Any]) -> float | None:
    """The budget in points these images confirm: the tested lower bound read as a loss (0 when the
    bound is above zero), e.g. 1.65 for a bound of −1.65 points; None without a bound."""
    bound = c.get("bound")
    return None if bound is None else round(max(0.0, -100 * bound), 2)


def what_they_confirm(c: dict[str, Any], budget_points: float) -> list[str]:
    """For a verdict that did not pass: what its images confirm, and about how many labelled images
    would decide ``budget_points`` (each when known); nothing for a pass.

    Example:
        >>> what_they_confirm({"verdict": "undecided", "bound": -0.0165, "needed": 214}, 1.0)
        ['these images confirm it within 1.65 points', 'about 214 labelled images would decide the 1.00-point budget']
    """
    if c.get("verdict") == "pass":
        return []
    within = confirms_within(c)
    return ([f"these images confirm it within {within:.2f} points"] if within is not None else []) + (
        [f"about {c['needed']} labelled images would decide the {budget_points:.2f}-point budget"]
        if c.get("needed") else [])


COLLAPSE_FRACTION = 0.5  # a class keeping less than this share of its FP32 AP has collapsed
COLLAPSE_MIN_AP = 0.05  # classes FP32 itself scores below this are too noisy to judge
COLLAPSE_MIN_INSTANCES = 10  # ... and classes with fewer ground-truth boxes in the subset
COLLAPSE_POINTS = 10.0  # a candidate losing more mAP50-95 points than this has collapsed as a whole


def collapsed_classes(candidate: dict[str, float] | None, fp32: dict[str, float] | None,
                      instances: dict[str, int] | None = None) -> str | None:
    """The classes whose AP50-95 fell below half of FP32's (``"3: 0.36→0.12"``, ...), or None.

    A mean ΔmAP can look fine while one class is lost; this flags it. Classes FP32 scores below
    :data:`COLLAPSE_MIN_AP`, or with fewer than :data:`COLLAPSE_MIN_INSTANCES` ground-truth boxes
    in the subset (when ``instances`` is known), are not judged: their AP is mostly noise there.
    """
    if not candidate or not fp32:
        return None
    lost = [f"{c}: {b:.2f}→{candidate.get(c, 0.0):.2f}" for c, b in sorted(fp32.items(), key=lambda kv: kv[0])
            if b >= COLLAPSE_MIN_AP and candidate.get(c, 0.0) < COLLAPSE_FRACTION * b
            and (instances is None or instances.get(c, 0) >= COLLAPSE_MIN_INSTANCES)]
    return "; ".join(lost) or None


def precision_label(scheme: CandidateScheme) -> str:
    """What a scheme quantizes, for the table: ``int8``, ``fp8``, ``w4a16 (weight-only)``, ``w4a8``... (its traits)."""
    return str(scheme.traits.label)


def blame(collapsed: str | None, reference: dict[str, Any] | None) -> str | None:
    """``collapsed`` with who is to blame, when the same file was also scored on a reference runtime:
    the runtime (the reference keeps the accuracy) or the quantization (the reference loses it too)."""
    if collapsed is None or not reference:
        return collapsed
    d = 100 * reference["delta"]
    if d > -COLLAPSE_POINTS:
        return (f"{collapsed} — the runtime miscomputes this file: {reference['provider']} scores it at "
                f"{d:+.2f} points")
    return f"{collapsed} — the quantization loses it: {reference['provider']} agrees ({d:+.2f} points)"


def collapse_verdict(delta: float | None, record: dict[str, Any] | None) -> str | None:
    """A one-line reason when a candidate lost more than :data:`COLLAPSE_POINTS` points, else None:
    what its scheme JSON says was quantized and how (bits, method, layers kept at 8 bits)."""
    if delta is None or -100 * delta <= COLLAPSE_POINTS:
        return None
    settings = (record or {}).get("settings") or {}
    how = [str(settings["weights"])] if settings.get("weights") else []
    recon = settings.get("reconstruction")
    if recon is not None:
        how.append(recon["method"] if isinstance(recon, dict) else str(recon))
    if settings.get("weights_8bit") is not None:
        how.append(f"{len(settings['weights_8bit'])} conv(s) kept at 8 bits")
    return f"lost {-100 * delta:.1f} points" + (f" ({'; '.join(how)})" if how else "")


class JsonRecord:
    """``to_dict``/``from_dict`` for a dataclass stored as JSON: its fields; read back, keys it does not
    know (written by a newer version, or since dropped) are ignored."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Row(JsonRecord):
    """One candidate on one backend: the consolidated table's row (``summary.*`` and the report).

    ``delta_*`` are fractions of mAP (0.01 = one point); the 95 % interval is a paired bootstrap
    over images. ``label``: ``float`` | ``accelerated`` | ``emulated`` | ``unsupported``.
    """

    candidate: str
    scheme: str
    precision: str
    k: int = 0
    backend: str | None = None
    label: str | None = None
    size_mb: float | None = None
    map50_95: float | None = None
    map50: float | None = None
    delta_map50_95: float | None = None
    delta_ci95_low: float | None = None
    delta_ci95_high: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    throughput_ips: float | None = None
    speedup_vs_fp32: float | None = None
    speedup_ci95_low: float | None = None  # the speed-up's 95 % interval over interleaved rounds
    speedup_ci95_high: float | None = None
    pareto: bool = False
    recommended: bool = False
    error: str | None = None
    batch: int | None = None
    ablation: bool = False  # head policy off: a diagnostic, never a deployment candidate
    collapsed: str | None = None  # lost > COLLAPSE_POINTS, or classes that lost half their AP (never recommended)


@dataclass(frozen=True)
class Decision(JsonRecord):
    """What to deploy on which backend, and why (``candidate`` None: nothing was measured).

    ``status``: ``deploy`` (confirmed on held-out images), ``unconfirmed`` (the best candidate, but
    no held-out verdict passed it: ``note`` says why), ``fp32`` (stay on FP32) or ``none``.
    Made by :mod:`quantsweep.decide.decision`; the report only presents it.
    """

    candidate: str | None
    backend: str | None
    reason: str
    closest: str | None = None  # when staying on FP32: the candidate that came nearest
    confirmed: dict[str, Any] | None = None  # the chosen finalist's confirmation (decide.confirm.Confirmation)
    status: str = "none"
    note: str | None = None  # unconfirmed: why there is no held-out verdict

    def mark(self, rows: list[Row]) -> list[Row]:
        """``rows`` with ``recommended`` set on the chosen candidate's row on the target backend."""
        return [dataclasses.replace(r, recommended=r.candidate == self.candidate and r.backend == self.backend
                                    and r.error is None and r.latency_p50_ms is not None) for r in rows]


def summary_rows(ledger: Ledger, ci: dict[str, tuple[float, float]] | None = None) -> list[Row]:
    """One row per candidate x backend (a candidate with no bench row still gets one row)."""
    fp32 = ledger.fp32
    base = fp32.map50_95 if fp32 is not None else None
    base_classes = (fp32.metrics or {}).get("ap_per_class") if fp32 is not None else None
    rows = []
    for cand in ledger:
        scheme = cand.scheme
        metrics = cand.metrics or {}
        low, high = (ci or {}).get(cand.name, (None, None))
        delta = (round(metrics["map50_95"] - base, 5) if base is not None and metrics.get("map50_95") is not None
                 else None)
        common: dict[str, Any] = {
            "candidate": cand.name,
            "scheme": "fp32" if scheme is None else scheme.method,
            "precision": "fp32" if scheme is None else precision_label(scheme),
            "k": cand.k,
            "size_mb": cand.size_mb(),
            "map50_95": metrics.get("map50_95"), "map50": metrics.get("map50"),
            "delta_map50_95": delta,
            "delta_ci95_low": low, "delta_ci95_high": high,
            "ablation": scheme is not None and not scheme.head_policy,
            "collapsed": None if scheme is None else blame((collapse_verdict(delta, cand.build_record())
                                                            or collapsed_classes(metrics.get("ap_per_class"),
                                                                                 base_classes,
                                                                                 metrics.get("instances_per_class"))),
                                                           cand.reference),
        }
        per_backend: list[dict[str, Any]] = []
        for backend in ledger.runtimes():
            error = ledger.runtime_error(backend)
            if error is not None:
                per_backend.append({"backend": backend, "label": "unsupported", "error": error})
                continue
            m = ledger.measurement(backend, cand.name)
            for b in m.rows if m is not None else []:
                per_backend.append({"backend": backend, "label": b.get("label"), "error": b.get("error"),
                                    "latency_p50_ms": b.get("latency_p50_ms"),
                                    "latency_p90_ms": b.get("latency_p90_ms"),
                                    "throughput_ips": b.get("throughput_ips"),
                                    "speedup_vs_fp32": b.get("speedup_vs_fp32"),
                                    "speedup_ci95_low": b.get("speedup_ci95_low"),
                                    "speedup_ci95_high": b.get("speedup_ci95_high"), "batch": b.get("batch")})
        for pb in per_backend or [{}]:
            rows.append(Row(**{**common, **pb, "error": cand.error or pb.get("error")}))
    return pareto_flags(rows)


def pareto_flags(rows: list[Row]) -> list[Row]:
    """``rows`` with ``pareto`` set on the accuracy (↑) / p50 latency (↓) front of each backend."""
    ok = [r for r in rows if r.error is None and r.latency_p50_ms is not None and r.map50_95 is not None]

    def dominated(r: Row) -> bool:
        assert r.latency_p50_ms is not None and r.map50_95 is not None
        return any(o is not r and o.backend == r.backend
                   and o.latency_p50_ms <= r.latency_p50_ms and o.map50_95 >= r.map50_95  # type: ignore[operator]
                   and (o.latency_p50_ms < r.latency_p50_ms or o.map50_95 > r.map50_95)  # type: ignore[operator]
                   for o in ok)

    front = {id(r) for r in ok if not dominated(r)}
    return [dataclasses.replace(r, pareto=id(r) in front) for r in rows]
