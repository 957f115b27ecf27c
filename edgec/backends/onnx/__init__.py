"""ONNX: the fused float graph and its QDQ int8 quantization (ONNX Runtime)."""
