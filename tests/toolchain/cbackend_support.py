"""Tiny seeded tf_keras models, converted to full-integer int8 ``.tflite``, for the C backend tests.

Together they use every operator the C backend generates. Built in code, no downloads.
"""

from __future__ import annotations

import numpy as np

from edgec.core.tf import keras, seed_everything, tensorflow


def to_int8_tflite(model, *, seed: int = 0, samples: int = 64, float_input: bool = False,
                   float_output: bool = False) -> bytes:
    """Convert with the real TFLite converter: int8 weights and activations, int8 input and output
    (float32 ones with ``float_input`` / ``float_output``: a QUANTIZE / DEQUANTIZE at the ends)."""
    tf = tensorflow()
    rng = np.random.default_rng(seed)
    shape = model.input_shape[1:]
    data = rng.normal(0.0, 1.0, size=(samples, *shape)).astype(np.float32)

    def representative():
        for i in range(samples):
            yield [data[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.float32 if float_input else tf.int8
    conv.inference_output_type = tf.float32 if float_output else tf.int8
    return conv.convert()


def _randomize_bn(model, rng) -> None:
    # Fresh BatchNorm statistics are identities; random ones give non-trivial per-channel scales.
    for layer in model.layers:
        if isinstance(layer, keras().layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.3, b.shape),
                               rng.normal(0, 0.3, m.shape), rng.uniform(0.5, 2.0, v.shape)])


def conv_model():
    """CONV_2D (same/valid, strides, fused RELU/RELU6), DEPTHWISE_CONV_2D (multipliers 2 and 1),
    pools, FULLY_CONNECTED, RESHAPE, SOFTMAX."""
    seed_everything(1)
    L = keras().layers
    x = inp = L.Input((12, 11, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(4, 1, activation="relu")(x)
    # 3x3 over 4 channels: a window of 36, a multiple of 4 with an odd number of 32-bit words,
    # the remainder branch of the DSP kernel's two-pixel assembly loop.
    x = L.Conv2D(8, 3, padding="same")(x)
    # Same rows in and out: runs in place (ring of rows), with pixel pairs straddling odd rows.
    x = L.Conv2D(8, 3, padding="same")(x)
    x = L.Conv2D(8, 3, strides=2, padding="valid", activation="relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)  # multiplier 1: SIMD path
    x = L.Conv2D(6, 3, padding="same")(x)
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.AveragePooling2D((2, 1), strides=1, padding="same")(x)
    x = L.Flatten()(x)
    # 54 -> 67 -> 16 -> 5: row blocks of four with 3 and 1 rows left over, inputs with 2 and 3
    # left over, and 16 groups of four inputs (the four-group loop of the DSP kernel).
    x = L.Dense(67, activation="relu")(x)
    x = L.Dense(16, activation="relu")(x)
    out = L.Dense(5, activation="softmax")(x)
    model = keras().Model(inp, out)
    _randomize_bn(model, np.random.default_rng(1))
    return model


def merge_model():
    """ADD, MUL (with broadcast), CONCATENATION, PAD, MEAN, LOGISTIC, TANH, HARD_SWISH, QUANTIZE,
    standalone RELU and RELU6."""
    seed_everything(2)
    L = keras().layers
    inp = L.Input((6, 6, 4))
    a = L.Conv2D(4, 1)(inp)
    b = L.Conv2D(4, 3, padding="same")(inp)
    s = L.Add()([a, b])
    m = L.Multiply()([s, L.Conv2D(4, 1, activation="sigmoid")(inp)])
    g = L.Lambda(lambda t: t * keras().backend.mean(t, axis=(1, 2), keepdims=True))(m)
    c = L.Concatenate()([g, b, inp])
    p = L.ReLU(6.0)(L.ZeroPadding2D(((1, 0), (0, 2)))(c))
    t = L.Activation("tanh")(L.Conv2D(6, 3)(p))
    h = L.Conv2D(6, 1)(L.ReLU()(L.Reshape((5, 6, 6))(t)))
    h = L.Lambda(lambda v: v * keras().activations.relu(v + 3.0, max_value=6.0) / 6.0)(h)
    # Logistic and tanh outputs have fixed, different scales: joining them needs a QUANTIZE.
    fixed = L.Concatenate()([L.Activation("sigmoid")(h), L.Activation("tanh")(h)])
    pooled = L.GlobalAveragePooling2D()(fixed)
    out = L.Dense(4)(pooled)
    return keras().Model(inp, out)


def residual_model():
    """ADD over whole tensors, broadcast and small (the kernel's table path for 256 elements and
    more, its per-element path below), with a fused RELU; depthwise 3x3 and 5x5 at strides 1 and 2
    over rows wider than the window (interior pixels, edges on every side)."""
    seed_everything(3)
    L = keras().layers
    inp = L.Input((9, 10, 8))
    a = L.Conv2D(8, 1)(inp)
    b = L.DepthwiseConv2D(3, padding="same")(inp)
    s = L.ReLU()(L.Add()([a, b]))
    g = L.GlobalAveragePooling2D(keepdims=True)(s)
    s = L.Lambda(lambda v: v[0] + v[1])([s, g])  # (1, 9, 10, 8) + (1, 1, 1, 8)
    d = L.DepthwiseConv2D(5, padding="same", activation="relu")(s)
    d = L.DepthwiseConv2D(3, strides=2, padding="same")(d)
    small = L.Add()([L.AveragePooling2D(2)(d), L.MaxPooling2D(2)(d)])  # 2 x 2 x 8 elements
    out = L.Dense(4)(L.Flatten()(small))
    return keras().Model(inp, out)


def odd_conv_model():
    """CONV_2D shapes for the int16-weight kernel's edges: 35 pixels (groups of four with three
    left over), odd channel counts, a window over in_c % 4 == 0 run in place (its ring of rows),
    a 1x1 over 5 channels (k % 4 != 0: the int8 layout), 3x3 depthwise layers over 84 channels
    (rows of 5 pixels; 'same' in place, 'valid' with RELU6), a window of 3 * 3 * 84 = 756 taps
    (longer than the DSP kernel expands) with RELU6, and a column of width 1 run in place."""
    seed_everything(5)
    L = keras().layers
    x = inp = L.Input((7, 5, 4))
    x = L.Conv2D(5, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(5, 3, padding="same")(x)
    x = L.Conv2D(84, 1)(x)
    # 3x3 depthwise over 84 channels, rows of 5 (two pixel pairs and one alone): in place, then
    # 'valid' with RELU6 (a clamped requantization)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.DepthwiseConv2D(3, activation="relu6")(x)
    x = L.Conv2D(7, 3, padding="same", activation="relu6")(x)
    x = L.Conv2D(7, (1, 3))(x)  # 5 x 1: rows of one pixel
    x = L.Conv2D(7, (3, 1), padding="same")(x)
    x = L.Flatten()(x)
    out = L.Dense(3)(x)
    return keras().Model(inp, out)


def depthwise_rows_model(width: int):
    """3x3 depthwise layers (12 channels: three groups of four) whose output rows cover the cases
    of the DSP row kernel's pixel loop: ``width`` 11 gives rows of 11, 9, 7, 5, 5, 3 and 1 pixels,
    ``width`` 10 rows of 10, 8, 6, 4 and 2 (quads, then none to three pixels left, or five as one
    block), 'same' and 'valid' padding, linear and RELU6 layers."""
    seed_everything(11 + width)
    L = keras().layers
    # with clamp_relu_outputs RELU6 takes the clamped path: every row width on both paths
    layers = ([("same", None), ("valid", None), ("valid", "relu6"), ("valid", "relu6"), ("same", None),
               ("valid", "relu6"), ("valid", "relu6")] if width == 11 else
              [("same", "relu6"), ("valid", None), ("valid", "relu6"), ("valid", "relu6"), ("valid", None)])
    x = inp = L.Input((16, width, 12))
    for padding, activation in layers:  # weights large enough that RELU6 clips at 6
        x = L.DepthwiseConv2D(3, padding=padding, activation=activation,
                              depthwise_initializer=keras().initializers.RandomNormal(0.0, 0.7))(x)
    x = L.Flatten()(x)
    return keras().Model(inp, L.Dense(3)(x))


def clamp_relu_outputs(tflite: bytes) -> bytes:
    """The model with every RELU / RELU6 conv, depthwise or fully-connected output's scale doubled
    and its zero point at -60: the converter puts such outputs' zero point at -128 (the kernels
    then only saturate); these clamp at -60 (and at 68 where a RELU6 range spanned [0, 6]), the
    requantization path with an activation clamp (rq_mode 1)."""
    import flatbuffers

    from edgec.core.tflite_model import op_name, schema

    model = schema().ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    relu = (schema().ActivationFunctionType.RELU, schema().ActivationFunctionType.RELU6)
    for graph in model.subgraphs:
        for op in graph.operators:
            if (op_name(model, op.opcodeIndex) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                    and op.builtinOptions.fusedActivationFunction in relu):
                q = graph.tensors[op.outputs[0]].quantization
                q.scale = [float(q.scale[0]) * 2]
                q.zeroPoint = [-60]
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def small_conv_model():
    """A little CONV_2D + FULLY_CONNECTED network, for the float32-I/O conversions."""
    seed_everything(6)
    L = keras().layers
    inp = L.Input((5, 5, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.Flatten()(x)
    return keras().Model(inp, L.Dense(3)(x))


def identity_model():
    """Only a RESHAPE (fixed batch 1): with float32 I/O the output shows every quantized input."""
    L = keras().layers
    inp = L.Input((3, 8), batch_size=1)
    return keras().Model(inp, L.Reshape((24,))(inp))


def digits_int8_tflite(model_path, calibration_path, *, samples: int = 200) -> bytes:
    """The bundled digits example converted to full-integer int8 with its calibration set."""
    tf = tensorflow()
    seed_everything(0)
    model = keras().models.load_model(model_path)
    images = np.load(calibration_path)["image"].astype(np.float32)

    def representative():
        for i in range(min(samples, len(images))):
            yield [images[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def quantize_input(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Quantize float samples with the model input's scale and zero point, as TFLite does."""
    from edgec.runtimes.base import input_details, quantize_samples

    shape = input_details(tflite)[0]["shape"]
    return np.concatenate(quantize_samples(tflite, [np.asarray(x, np.float32)])).reshape(len(x), *shape[1:])
