"""ONNX graphs: reading, folding, fusing, and the lowering to tf_keras."""
