"""edgec's own microcontroller backend: int8 ``.tflite`` -> portable C99, bit-exact with TFLite Micro."""

from edgec.backends.c.codegen import OPS, generate

__all__ = ["OPS", "generate"]
