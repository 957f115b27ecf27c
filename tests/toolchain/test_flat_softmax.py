"""A Softmax output too flat for int8's fixed 1/256 step stays float on LiteRT (edgec/quantize/flat_softmax.py).

Real TFLite converter and MLIR quantizer, LiteRT verification; the model is built in code the way the
onnx wheel's light-zoo models behave (a 1000-way head whose probabilities all sit near 1/1000).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.toolchain


def _head_model(*, flat: bool, layout: bool = False):
    """Conv, pooling, a 1000-way Dense and a separate Softmax layer (optionally reshaped after, as a lowered
    ONNX model's N x 1000 x 1 x 1 output is). ``flat``: tiny head weights, so every probability is ~1/1000."""
    from edgec.core.tf import keras, seed_everything

    seed_everything(0)
    K = keras()
    x = K.Input((8, 8, 3), name="image")
    y = K.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    y = K.layers.GlobalAveragePooling2D(name="pool")(y)
    scale = 1e-3 if flat else 3.0
    y = K.layers.Dense(1000, name="logits", kernel_initializer=K.initializers.RandomNormal(stddev=scale, seed=1))(y)
    y = K.layers.Softmax(name="prob")(y)
    if layout:
        y = K.layers.Reshape((1000, 1, 1), name="nchw")(y)
    return K.Model(x, y)


def test_the_rule_finds_a_flat_softmax_output_through_layout_layers_and_in_the_tflite():
    from edgec.quantize import converter as quantize
    from edgec.quantize import flat_softmax

    model = _head_model(flat=True, layout=True)
    assert flat_softmax.softmax_outputs(model) == [0]
    chains = flat_softmax.tflite_softmax_outputs(quantize.float_tflite(model))
    assert list(chains) == [0] and len(chains[0][0]) == 2  # output 0: SOFTMAX's output, then the RESHAPE's
    assert chains[0][1] == (1000, 1, 1)
    probabilities = np.full((8, 1000), 1e-3)
    assert flat_softmax.is_flat(probabilities)
    peaked = probabilities.copy()
    peaked[:, 3] = 0.2  # 51 steps of 1/256: int8 holds it
    assert not flat_softmax.is_flat(peaked)
    dense_softmax = _head_model(flat=True)
    assert flat_softmax.softmax_outputs(dense_softmax) == [0]


@pytest.mark.parametrize("flat", [True, False])
def test_litert_keeps_a_flat_softmax_in_float_and_verifies(tmp_path, run_cli, flat):
    model = _head_model(flat=flat, layout=True)
    model.save(tmp_path / "m.keras")
    data = np.random.default_rng(0).uniform(0, 1, (96, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", image=data[:64])
    np.savez(tmp_path / "eval.npz", image=data[64:])
    code, _, err = run_cli("compile", tmp_path / "m.keras", "-t", "android-arm64", "--calibration",
                           tmp_path / "cal.npz", "--eval", tmp_path / "eval.npz", "-o", tmp_path / "out")
    report = json.loads((tmp_path / "out" / "android-arm64" / "report.json").read_text())
    if flat:
        # All-int8, the probabilities (~1/1000, under half of int8's 1/256 step) would all be 0: cosine 0.
        assert code == 0, err
        assert report["flat_softmax"]["nodes"] and report["flat_softmax"]["median_top_probability"][0] < 4 / 256
        assert report["verification"]["cosine"] >= 0.99
    else:  # a peaked head is int8 as before
        assert "flat_softmax" not in report


def test_a_flat_softmax_among_several_outputs_is_matched_by_shape():
    from edgec.core.tf import keras, seed_everything
    from edgec.quantize import converter as quantize
    from edgec.quantize import flat_softmax

    seed_everything(0)
    K = keras()
    x = K.Input((8, 8, 3), name="image")
    y = K.layers.GlobalAveragePooling2D(name="pool")(K.layers.Conv2D(8, 3, name="conv")(x))
    score = K.layers.Dense(4, name="score")(y)
    prob = K.layers.Softmax(name="prob")(K.layers.Dense(1000, name="logits")(y))
    model = K.Model(x, [score, prob])
    assert flat_softmax.softmax_outputs(model) == [1]
    reference = [np.zeros((8, 4)), np.full((8, 1000), 1e-3)]
    kept, section = flat_softmax.choose([1], quantize.float_tflite(model), reference)
    assert len(kept) == 1 and section["median_top_probability"] == [0.001]
    assert flat_softmax.choose([0], quantize.float_tflite(model), reference) == ([], {})  # not a softmax
