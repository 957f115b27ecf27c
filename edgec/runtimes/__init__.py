"""One module per runtime that runs an artifact on the host (TFLite Micro, LiteRT, ONNX Runtime, OpenVINO), and timing."""
