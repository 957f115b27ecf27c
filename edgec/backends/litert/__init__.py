"""LiteRT (phones, edge Linux): model.tflite, plus the fp16 variant for GPU delegates."""
