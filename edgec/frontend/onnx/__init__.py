"""edgec.frontend.onnx."""
