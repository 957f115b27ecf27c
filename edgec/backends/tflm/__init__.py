"""edgec.backends.tflm."""
