"""OpenVINO IR: FP32, FP16 or INT8 (NNCF) from the ONNX backend's float graph."""
