"""The bad-input catalogue: every user mistake quantsweep recognises, its message and its fix.

The tests parametrise over :data:`CASES` (each case has a test that triggers it and checks the
message contains ``says``), and docs/troubleshooting.md's table is generated from it by
``python -m quantsweep.troubleshooting`` (a test checks it is in sync).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CASES", "Case", "markdown_table"]


@dataclass(frozen=True)
class Case:
    key: str
    situation: str
    says: str  # a fragment of the one-line message
    fix: str


CASES: tuple[Case, ...] = (
    Case("missing-model", "the --model file does not exist", "model file not found", "check the --model path"),
    Case("not-onnx", "the .onnx file is not a readable ONNX model", "is not a readable ONNX model",
         "pass an .onnx file, or an Ultralytics .pt to export"),
    Case("not-a-model-type", "the model is neither .pt nor .onnx", "unsupported model type",
         "pass an Ultralytics .pt checkpoint or an .onnx file"),
    Case("corrupt-pt", "the .pt is truncated or not a checkpoint", "not a loadable", "pass an Ultralytics .pt checkpoint"),
    Case("unsafe-pt", "the .pt pickle would call something other than model classes", "would run code when loaded",
         "load only checkpoints you trust; --trust-checkpoint if you do"),
    Case("unknown-layout", "the output shape matches no detector layout", "unknown output layout",
         "export a head of a supported layout (docs/usage.md#output-layouts)"),
    Case("class-mismatch", "the model's class count differs from the dataset's categories", "classes but",
         "evaluate on the dataset the model was trained for"),
    Case("missing-images", "the --images folder does not exist", "images folder not found", "pass the images folder"),
    Case("missing-annotations", "the --annotations file does not exist", "annotations file not found",
         "pass a COCO instances JSON"),
    Case("malformed-json", "the annotations file is not valid JSON", "is not valid JSON", "fix or regenerate the file"),
    Case("json-missing-keys", "the JSON lacks images/annotations/categories", "has no", "use COCO instances format"),
    Case("listed-image-missing", "an image listed in the annotations is missing", "but missing",
         "restore the file or remove it from the annotations"),
    Case("corrupt-image", "an image cannot be decoded", "cannot be decoded", "replace or remove the image"),
    Case("empty-subset", "the evaluation subset has no images", "is empty", "use a dataset with images"),
    Case("unknown-ids", "--image-ids lists ids not in the annotations", "are not in", "list only existing ids"),
    Case("model-without-data", "run --model without an evaluation dataset", "needs its dataset",
         "pass --images/--annotations or --data"),
    Case("model-without-calib", "run --model without calibration images", "no calibration images given",
         "pass --calib-dir with images disjoint from the evaluation subset"),
    Case("calib-no-images", "the calibration folder holds no image files", "no images in",
         "pass a folder of calibration images (searched recursively; .jpg .png .bmp .webp .tif)"),
    Case("calib-overlap", "calibration images are also in the evaluation subset", "also in the evaluation subset",
         "use a calibration split disjoint from the evaluation subset"),
    Case("bad-k", "a K in --ks is negative or not an integer", "--ks must be integers",
         "pass non-negative integers, e.g. --ks 0,5,10,20"),
    Case("negative-k", "a K in --ks is negative", "non-negative integer", "pass e.g. --ks 0,5,10,20"),
    Case("k-too-large", "K exceeds the number of rankable nodes", "exceeds the", "choose a smaller K"),
    Case("bad-probe-top", "--sensitivity-probe-top is negative", "sensitivity-probe-top must be",
         "pass e.g. 32, or 0 to probe every node"),
    Case("bad-float-dtype", "--float-dtype names a precision other than fp32/fp16", "invalid choice",
         "use --float-dtype fp32 or fp16"),
    Case("unknown-scheme", "a scheme name is not in the registry", "unknown scheme", "see quantsweep schemes (did-you-mean)"),
    Case("unknown-backend", "a backend name is unknown", "unknown backend", "choose a listed backend (did-you-mean)"),
    Case("unwritable-out", "the output folder cannot be created", "cannot create", "choose a writable --out"),
    Case("result-exists", "the output file already holds a finished result", "never overwritten",
         "choose another --out or pass --overwrite"),
    Case("resume-other-config", "--resume on a folder made with other settings", "different settings",
         "resume with the same settings, or start a new run"),
    Case("external-data-escape", "ONNX external data points outside the model's folder", "outside the model's folder",
         "keep external data next to the model"),
    Case("opset-range", "the ONNX opset is outside the supported range", "outside the supported range",
         "re-export with a supported --opset"),
)


def markdown_table() -> str:
    """docs/troubleshooting.md's table."""
    lines = ["| situation | quantsweep says (one line, exit code 2) | fix |", "|---|---|---|"]
    for c in CASES:
        lines.append(f"| {c.situation} | “…{c.says}…” | {c.fix} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
