"""The model: safe ``.pt`` loading, export to FP32 ONNX, ONNX/IR inspection, graph analysis, output layouts."""
