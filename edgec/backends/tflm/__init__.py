"""TFLite Micro: model.tflite + model_data.cc/.h and the op resolver, slimmed and arena-sized."""
