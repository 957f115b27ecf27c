"""Quantization: the TFLite converter driver, per-layer error, keep-float searches, the stem, softmax scales."""
