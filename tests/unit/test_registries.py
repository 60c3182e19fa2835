"""Adding a scheme or a backend is one class plus one registry line: proved with toy ones."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from tests.conftest import tiny_convnet

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import SchemeMethods, SchemeTraits


@dataclass(frozen=True)
class ToyFp16Weights(SchemeMethods):
    """A toy scheme: every Conv weight rounded through fp16 (no quantizer, no library)."""

    method: ClassVar[str] = "toy"
    precision: ClassVar[str] = "weight-only"
    k: int = 0
    head_policy: bool = True
    float_dtype: str = "fp32"
    registry: str = field(default="", compare=False)

    @property
    def traits(self) -> SchemeTraits:
        return SchemeTraits(label="fp16 weights (toy)")

    @property
    def name(self) -> str:
        return "toy-fp16w"

    def build(self, ctx, keep_float, out):
        import onnx
        from onnx import numpy_helper

        from quantsweep.schemes import BuildResult

        m = onnx.load(str(ctx.fp32_onnx))
        for init in m.graph.initializer:
            w = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(w.astype(np.float16).astype(np.float32), init.name))
        onnx.save(m, str(out))
        return BuildResult(out, "toy", "0", {"calibration_method": "none"}, dict(keep_float))


def test_a_toy_scheme_registers_and_builds(tmp_path):
    from quantsweep.data.calibration import CalibSet
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import REGISTRY, BuildContext, SchemeSpec, register, spec

    registry = register((SchemeSpec("toy", ToyFp16Weights, "fp16-rounded weights (a test)"),), dict(REGISTRY))
    assert "toy" in registry and "toy" not in REGISTRY  # the shipped registry is untouched
    scheme = spec("toy", registry).make()
    assert scheme.registry == "toy" and scheme.name == "toy-fp16w"
    with pytest.raises(QuantsweepError, match="did you mean 'toy'"):
        spec("tyo", registry)
    with pytest.raises(QuantsweepError, match="registered twice"):
        register((SchemeSpec("toy", ToyFp16Weights, "again"),), registry)

    fp32 = tiny_convnet(tmp_path / "fp32.onnx")
    (tmp_path / "photos").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "photos" / "a.png"), np.zeros((32, 32, 3), np.uint8))
    calib = CalibSet.from_folder(tmp_path / "photos", 1, (32, 32))
    cand = materialize(scheme, BuildContext(fp32, None, calib, tmp_path / "work"), tmp_path / "out")
    assert cand.model_path.is_file() and cand.record["registry"] == "toy" and cand.record["tool"] == "toy"


@dataclass(frozen=True)
class ToyBackend:
    """A toy runtime: 'runs' a model by summing the input (labels every model float)."""

    name: str = "toy"
    extra: str | None = None

    def unavailable(self):
        return None

    def group(self, models, work):
        return list(models)

    def prepare(self, model, batch, work, settings):
        from quantsweep.runtimes.base import Prepared, check_batch

        _, hw = check_batch(Path(model), batch)
        return Prepared(lambda x: float(x.sum()), "float", {"toy": True}, {"input_shape": [batch, 3, *hw]})


def test_a_toy_backend_registers_and_benchmarks(tmp_path):
    from quantsweep.bench.measure import benchmark
    from quantsweep.runtimes import RUNTIMES, available_runtimes, get_runtime
    from quantsweep.runtimes.base import BenchSettings

    registry = {**RUNTIMES, "toy": ToyBackend()}
    assert get_runtime("toy", registry).name == "toy" and "toy" in available_runtimes(registry)
    fp32 = tiny_convnet(tmp_path / "fp32.onnx")
    res = benchmark([("fp32", fp32), ("same", fp32)], BenchSettings(backends=("toy",), iters=3, warmup=1),
                    tmp_path / "w", registry=registry)
    rows = {r["candidate"]: r for r in res["rows"]}
    assert set(rows) == {"fp32", "same"} and all(r["backend"] == "toy" and r["error"] is None for r in rows.values())
    assert rows["same"]["samples"] == 3 and rows["same"]["evidence"] == {"toy": True}
    with pytest.raises(QuantsweepError, match="unknown backend 'toy'"):
        benchmark([("fp32", fp32)], BenchSettings(backends=("toy",)))  # not in the shipped registry


@pytest.mark.parametrize("name", ["w4a8-mse", "w4a8-graph-gptq", "w8a8"])
def test_schemes_that_quantize_activations_are_not_labelled_weight_only(name):
    from quantsweep.results import precision_label
    from quantsweep.schemes import REGISTRY

    label = precision_label(REGISTRY[name].make())
    assert "weight-only" not in label and label.endswith("a8"), label
    assert precision_label(REGISTRY["w4a16-graph-gptq"].make()) == "w4a16 (weight-only)"


def test_a_scheme_has_one_name_and_old_names_are_aliases(capsys):
    """The registry name is the candidate's name at K=0 and its file's stem; old names resolve, with a notice."""
    from quantsweep.schemes import ALIASES, REGISTRY, make_scheme

    for name, entry in REGISTRY.items():
        scheme = entry.make()
        assert scheme.name == name, (name, scheme.name)
    assert set(ALIASES).isdisjoint(REGISTRY) and set(ALIASES.values()) <= set(REGISTRY)
    capsys.readouterr()
    assert make_scheme("w4a16-graph", k=3).name == "w4a16-graph-gptq-k3"
    err = capsys.readouterr().err
    assert "now called 'w4a16-graph-gptq'" in err and len(err.strip().splitlines()) == 1
