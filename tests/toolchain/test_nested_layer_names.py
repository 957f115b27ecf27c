"""The converter's tensor names of a nested Keras model map to the layers that hold the weights."""

import numpy as np
import pytest

from edgec.core.tflite_model import layer_name, parse

pytestmark = pytest.mark.toolchain


def test_nested_model_tensors_name_their_innermost_layers():
    from edgec.core.tf import keras, seed_everything, tensorflow

    seed_everything(0)
    K, tf = keras(), tensorflow()
    inner_in = K.Input((8,))
    inner = K.Model(inner_in, K.layers.Dense(6, activation="relu", name="fc_inner")(inner_in), name="block")
    x = K.Input((4, 4, 2))
    y = K.layers.Conv2D(3, 3, activation="relu", name="conv1")(x)
    y = inner(K.layers.Dense(8, name="fc1")(K.layers.Flatten(name="flat")(y)))
    model = K.Model(x, K.layers.Dense(2, name="head")(y), name="outer")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, 4, 4, 2), dtype=np.float32)] for _ in range(10))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    tflite = parse(conv.convert())
    weights = {layer_name(tflite.tensors[op.inputs[1]].name) for op in tflite.operators
               if op.name in ("CONV_2D", "FULLY_CONNECTED")}
    assert weights == {"conv1", "fc1", "fc_inner", "head"}
