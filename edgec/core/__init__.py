"""The bottom layer: errors, targets, formats, datasets, metrics, the .tflite reader; imports nothing else of edgec."""
