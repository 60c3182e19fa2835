"""The model: safe ``.pt`` loading, export to FP32 ONNX, ONNX inspection and graph analysis, ORT sessions."""
