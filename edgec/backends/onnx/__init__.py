"""edgec.backends.onnx."""
