"""Building candidates: a scheme + the FP32 ONNX + calibration -> a QDQ ONNX and its scheme JSON; keep-float policy and sensitivity ranking."""
