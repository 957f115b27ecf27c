"""MLPerf Tiny's visual wake words and anomaly detection models, built in code with seeded weights.

The trained files (``vww_96.h5``, ``ad01_int8.tflite``) are not beside the repository; cycles,
RAM and bit-exactness with TFLite Micro depend on the architecture and the int8 arithmetic, not
on what the weights learned, so the benchmark builds the same layers:

- visual wake words: MLPerf Tiny's MobileNetV1 (``benchmark/training/visual_wake_words/
  vww_model.py``, alpha 0.25 as 8 filters at the stem): 96x96x3 input, a 3x3 stride-2 convolution,
  13 depthwise-separable blocks (16, 32, 32, 64, 64, 128 x6, 256 x2 pointwise filters, stride 2 at
  blocks 2, 4, 6, 12), batch normalization and ReLU after each convolution, 3x3 average pooling,
  a 2-way dense softmax;
- anomaly detection: MLPerf Tiny's autoencoder (``benchmark/training/anomaly_detection/
  keras_model.py``): 640 inputs, dense 128 x4, dense 8, dense 128 x4 (each with batch
  normalization and ReLU), dense 640 out: ten fully connected layers.

Both are converted to full-integer int8 with int8 I/O by edgec's quantizer, calibrated on seeded
random samples in the models' input ranges (images in [0, 1], normalized log-mel features ~N(0, 1)).
"""

from __future__ import annotations

import numpy as np

CALIBRATION_SAMPLES = 64


def vww_model(seed: int = 0):
    """MLPerf Tiny's visual wake words MobileNetV1 (alpha 0.25, 96x96x3) with seeded weights."""
    import tf_keras as keras

    keras.backend.clear_session()  # layer names (and so the .tflite bytes) must not depend on earlier models
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((96, 96, 3), name="input")
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for filters, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
                            (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="vww_mobilenet_v1")
    _randomize_batchnorm(model, seed)
    return model


def ad_model(seed: int = 0):
    """MLPerf Tiny's anomaly detection autoencoder (640 -> 128 x4 -> 8 -> 128 x4 -> 640) with seeded weights."""
    import tf_keras as keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((640,), name="input")
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(units)(x)))
    outputs = layers.Dense(640)(x)
    model = keras.Model(inputs, outputs, name="ad_autoencoder")
    _randomize_batchnorm(model, seed)
    return model


def _randomize_batchnorm(model, seed: int) -> None:
    """Seeded batch-normalization statistics, so the folded scales and biases are not all 1 and 0
    (a trained network's are not either)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.1, beta.shape).astype(np.float32),
                               rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 1.5, var.shape).astype(np.float32)])


def calibration(model, seed: int = 0) -> dict:
    """Seeded calibration samples by input name: images in [0, 1) for VWW, N(0, 1) features for AD."""
    rng = np.random.default_rng(seed)
    shape = (CALIBRATION_SAMPLES, *model.inputs[0].shape[1:])
    x = rng.random(shape, dtype=np.float32) if len(shape) == 4 else rng.standard_normal(shape, dtype=np.float32)
    return {"input": x}


def int8_tflite(name: str, seed: int = 0) -> bytes:
    """The full-integer int8 .tflite (int8 I/O) of ``name`` ("vww" or "ad")."""
    from edgec.quantize.converter import int8_tflite as convert
    from edgec.core.tf import seed_everything

    seed_everything(seed)
    model = {"vww": vww_model, "ad": ad_model}[name](seed)
    return convert(model, calibration(model, seed))
