"""Shared helpers of the compression tests: the digits example, the real int8 converter, TFLM runs."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


@cache
def digits_data() -> dict[str, np.ndarray]:
    """The bundled digits calibration and held-out sets."""
    cal = np.load(ROOT / "calibration/digits/calibration.npz")
    ev = np.load(ROOT / "calibration/digits/eval.npz")
    return {"cal_x": cal["image"], "cal_y": cal["label"], "eval_x": ev["image"], "eval_y": ev["label"]}


def digits_model():
    """A fresh copy of the bundled digits CNN (tf_keras functional, with batch norms)."""
    from edgec.core.tf import keras

    return keras().models.load_model(ROOT / "edgec/examples/digits_cnn.keras", compile=False)


def int8_tflite(model, calibration: np.ndarray) -> bytes:
    """Full-integer .tflite from the real TFLite converter (int8 ops, int8 input and output)."""
    from edgec.core.tf import tensorflow

    tf = tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in calibration[:100])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def quantize_inputs(tflite: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Float samples -> int8 samples with the artifact's own input quantization."""
    from edgec.runtimes.base import quantize_samples

    return quantize_samples(tflite, [np.asarray(x, np.float32)])


def tflm_top1(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Predicted classes of the int8 artifact, run in the TFLite Micro interpreter."""
    from edgec.runtimes.tflm import top1_tflm

    return top1_tflm(tflite, x)


def small_cnn(*, convs: tuple[str, ...] = ("first", "middle")):
    """A seeded 8x8x3 CNN: 3x3 convolutions named ``convs``, then Dense "hidden" (32) and "last" (4)."""
    from edgec.core.tf import keras, seed_everything

    seed_everything(0)
    K = keras()
    x = K.Input((8, 8, 3))
    y = x
    for name, filters in zip(convs, (8, 16, 16, 16)):
        y = K.layers.Conv2D(filters, 3, activation="relu", name=name)(y)
    y = K.layers.Dense(32, activation="relu", name="hidden")(K.layers.Flatten()(y))
    return K.Model(x, K.layers.Dense(4, name="last")(y))
