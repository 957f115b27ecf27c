"""Model files in: Keras (2 and 3), SavedModels and ONNX, checked, and ONNX lowered to Keras."""
