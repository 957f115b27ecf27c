"""Keras 3 models (the ``keras`` TensorFlow 2.21 installs): .keras, .h5 and model.export() compile.

The models are built here with Keras 3 itself, in-process: ``import keras`` gives Keras 3 as its own
package even though edgec has set ``TF_USE_LEGACY_KERAS=1`` (which only redirects ``tf.keras``).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import assert_refused

pytestmark = pytest.mark.toolchain

SHAPE = (12, 12, 1)


def _keras3():
    from edgec.core.tf import keras3

    k3 = keras3()
    assert k3.__version__.startswith("3")
    return k3


def _quadrant_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a bright square in one quadrant; the label is the quadrant (a task learned in seconds,
    so the model's decisions are clear and int8 agreement is a meaningful check)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE), dtype=np.float32) * 0.3
    labels = rng.integers(0, 4, n)
    for image, label in zip(x, labels):
        row, col = divmod(int(label), 2)
        image[row * 6 + 1:row * 6 + 5, col * 6 + 1:col * 6 + 5] += 0.7
    return x, labels


def _trained(k3, *layers):
    """A tiny Keras 3 model trained with Adam, so the file also has a compile_config."""
    k3.utils.set_random_seed(0)
    model = k3.Sequential([k3.Input(SHAPE, name="image"), *layers], name="tiny")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _quadrant_images(128, seed=0)
    model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    return model


def _cnn(k3):
    L = k3.layers
    return _trained(k3, L.Conv2D(8, 3, activation="relu", name="conv1"), L.Conv2D(16, 3, name="conv2"),
                    L.BatchNormalization(name="bn"), L.ReLU(name="relu"), L.MaxPooling2D(name="pool"),
                    L.Flatten(name="flat"), L.Dense(32, activation="relu", name="fc1"),
                    L.Dense(4, activation="softmax", name="head"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same trained Keras 3 CNN saved three ways, plus calibration samples."""
    k3 = _keras3()
    folder = tmp_path_factory.mktemp("keras3")
    model = _cnn(k3)
    model.save(folder / "cnn.keras")
    model.save(folder / "cnn.h5")
    model.export(str(folder / "cnn_export"), verbose=False)
    x, labels = _quadrant_images(96, seed=1)
    np.savez(folder / "calibration.npz", image=x, labels=labels)
    return folder


def _compile(run_cli, model, out, *extra, targets=("cortex-m4", "intel-cpu"), calibration=None):
    args = ["compile", model, "-o", out, *extra]
    for target in targets:
        args += ["--target", target]
    return run_cli(*args, "--calibration", calibration)


@pytest.mark.parametrize("form", ["cnn.keras", "cnn.h5", "cnn_export"])
def test_keras3_model_compiles_and_verifies_for_mcu_and_cpu(files, run_cli, form):
    out = files / f"out_{form}"
    code, _, err = _compile(run_cli, files / form, out, calibration=files / "calibration.npz")
    assert code == 0, err
    for target, runtime in (("cortex-m4", "tflm"), ("intel-cpu", "openvino")):
        report = json.loads((out / target / "report.json").read_text())
        assert report["verification"]["passed"] and report["verification"]["runtime"] == runtime
        assert report["verification"]["top1_agreement"] >= 0.95
        assert report["model"]["params"] == 1 * 9 * 8 + 8 + 8 * 9 * 16 + 16 + 4 * 16 + 256 * 32 + 32 + 33 * 4
        notes = " ".join(report["model"]["notes"])
        if form == "cnn_export":
            assert "serving signature" in notes
        else:  # rebuilt in tf_keras and checked against Keras 3 itself on the calibration samples
            assert "saved by Keras 3" in notes and re.search(r"outputs match Keras 3 on \d+ calibration samples", notes)


def test_prune_and_cluster_work_on_a_keras3_model(files, run_cli):
    out = files / "out_compressed"
    code, _, err = _compile(run_cli, files / "cnn.keras", out, "--prune", "0.5", "--clusters", "8",
                            targets=("cortex-m4",), calibration=files / "calibration.npz")
    assert code == 0, err
    report = json.loads((out / "cortex-m4" / "report.json").read_text())
    layers = {x["name"]: x for x in report["compression"]["layers"]}
    # The first and last prunable layers stay dense by default; the middle ones carry the settings.
    for name in ("conv2", "fc1"):
        assert layers[name]["sparsity"] == pytest.approx(0.5, abs=0.03), layers[name]
        assert layers[name]["unique_values_max_per_channel"] <= 8, layers[name]
    assert [s["name"] for s in report["stages"]][:4] == ["load", "fuse", "prune", "cluster"]
    assert report["verification"]["passed"]


def test_compression_of_an_exported_savedmodel_is_refused(files, run_cli):
    out = files / "out_refused"
    result = _compile(run_cli, files / "cnn_export", out, "--prune", "0.5", targets=("cortex-m4",),
                      calibration=files / "calibration.npz")
    assert_refused(result, 2, "--prune needs a Keras model", "no Keras graph")
    assert not (out / "cortex-m4").exists()


def _tiny_dense(k3, *middle):
    inp = k3.Input((4,), name="x")
    x = inp
    for layer in middle:
        x = layer(x)
    model = k3.Model(inp, k3.layers.Dense(3, name="head")(x))
    model.compile(optimizer="adam", loss="mse")  # the optimizer in compile_config is not a layer
    return model


def _refusal(run_cli, path, tmp_path, *extra):
    return run_cli("compile", path, "--target", "cortex-m4", "--calibration", "random", "-o", tmp_path / "out",
                   *extra)


def test_keras3_lambda_is_refused_unless_trusted(run_cli, tmp_path):
    k3 = _keras3()
    path = tmp_path / "lambda.keras"
    _tiny_dense(k3, k3.layers.Lambda(lambda t: t * 2.0, name="double")).save(path)
    assert_refused(_refusal(run_cli, path, tmp_path), 2, "'double' is a Lambda layer", "--trust-model")
    # Trusted, Keras 3 loads it, but a Lambda's code cannot move to tf_keras: the layer is named.
    assert_refused(_refusal(run_cli, path, tmp_path, "--trust-model"), 2, "layer 'double' cannot be rebuilt")


def test_keras3_custom_class_is_refused_before_loading(run_cli, tmp_path):
    k3 = _keras3()

    class Scale(k3.layers.Layer):
        def call(self, x):
            return x * 3.0

    for suffix in ("keras", "h5"):
        path = tmp_path / f"custom.{suffix}"
        _tiny_dense(k3, Scale(name="scale")).save(path)
        assert_refused(_refusal(run_cli, path, tmp_path), 2, "layer 'scale' uses custom class 'Scale'",
                       "--trust-model")

    def doubled(x):
        return x * 2.0

    path = tmp_path / "activation.keras"
    _tiny_dense(k3, k3.layers.Dense(4, activation=doubled, name="hidden")).save(path)
    assert_refused(_refusal(run_cli, path, tmp_path), 2, "layer 'hidden' uses custom function 'doubled'")


def test_keras3_layer_without_a_tf_keras_equivalent_is_named(run_cli, tmp_path):
    k3 = _keras3()
    path = tmp_path / "rms.keras"
    _tiny_dense(k3, k3.layers.RMSNormalization(name="rms")).save(path)
    assert_refused(_refusal(run_cli, path, tmp_path), 2, "layer 'rms' cannot be rebuilt in tf_keras",
                   "no built-in layer 'RMSNormalization'")
    # Same name, other function: Keras 3's hard_sigmoid is relu6(x + 3) / 6, tf_keras's a clipped line.
    path = tmp_path / "hard.keras"
    _tiny_dense(k3, k3.layers.Dense(4, activation="hard_sigmoid", name="hard")).save(path)
    assert_refused(_refusal(run_cli, path, tmp_path), 2, "layer 'hard' cannot be rebuilt",
                   "'hard_sigmoid' of Keras 3 computes a different function")


def test_functional_keras3_model_with_branches_is_rebuilt_output_equal(tmp_path):
    """Inbound nodes with several tensors (Add), a layer called twice, and the output check itself."""
    from edgec.frontend.load import load
    from edgec.frontend.keras.keras3 import check_rebuild

    k3 = _keras3()
    k3.utils.set_random_seed(0)
    inp = k3.Input((6,), name="x")
    shared = k3.layers.Dense(6, activation="tanh", name="shared")
    a = shared(shared(inp))
    b = k3.layers.Dense(6, name="side")(inp)
    out = k3.layers.Dense(2, name="out")(k3.layers.Concatenate(name="cat")([k3.layers.Add(name="add")([a, b]), b]))
    k3.Model(inp, out).save(tmp_path / "branches.keras")
    loaded = load(tmp_path / "branches.keras")
    samples = {"x": np.random.default_rng(0).random((32, 6), dtype=np.float32)}
    assert "outputs match Keras 3 on 32" in check_rebuild(loaded.keras_model, loaded.keras3_model, samples, "m")
    # A wrong weight in the rebuild is caught, and the layer where the outputs first part is named.
    loaded.keras_model.get_layer("side").set_weights([w + 0.5 for w in loaded.keras_model.get_layer("side").get_weights()])
    with pytest.raises(Exception, match="first at layer 'side'"):
        check_rebuild(loaded.keras_model, loaded.keras3_model, samples, "m")


def test_common_keras3_layers_are_rebuilt_output_equal(tmp_path):
    """Renamed options (LeakyReLU) and activations (silu), Keras 3-only options at their defaults
    (Resizing), operations on tensors and Keras 3-only activations (MobileNetV3's hard-swish), a
    nested Sequential with its own Input (node numbering), depthwise/separable convolutions, an LSTM."""
    from edgec.frontend.load import load
    from edgec.frontend.keras.keras3 import check_rebuild

    k3 = _keras3()
    L = k3.layers
    k3.utils.set_random_seed(0)
    inner = k3.Sequential([k3.Input((10, 10, 1)), L.Conv2D(4, 3, name="inner_conv"), L.ReLU(max_value=6.0)],
                          name="inner")
    inp = k3.Input((8, 8, 1), name="image")
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(L.Rescaling(0.5, 0.1)(L.ZeroPadding2D(1)(inp)))
    x = L.SeparableConv2D(4, 3, padding="same", name="sep")(L.LeakyReLU(0.2, name="leaky")(inner(x)))
    x = L.Resizing(4, 4, name="resize")(x)
    x = L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0) - L.Dense(4, activation="silu", name="silu")(x)  # Keras 3 ops
    # Activations tf_keras lacks, rebuilt from built-in layers (MobileNetV3 uses hard_silu).
    x = L.Concatenate()([L.Activation(a, name=a)(x) for a in ("relu6", "hard_sigmoid", "hard_silu")])
    seq = L.LSTM(3, name="lstm")(L.Conv1D(3, 2, padding="causal")(L.Reshape((16, 12))(x)))
    x = L.Concatenate()([L.GlobalAveragePooling2D()(x), seq])
    k3.Model(inp, L.Dense(3, name="head")(L.LayerNormalization()(x))).save(tmp_path / "layers.keras")
    loaded = load(tmp_path / "layers.keras")
    samples = {"image": np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)}
    assert "outputs match Keras 3 on 16" in check_rebuild(loaded.keras_model, loaded.keras3_model, samples, "m")
    assert loaded.keras_model.get_layer("leaky").get_config()["alpha"] == pytest.approx(0.2)


def test_tf_keras_savedmodel_keeps_its_layers(tmp_path):
    """Only SavedModels without a Keras graph are wrapped; a tf_keras one still loads layer by layer."""
    from edgec.frontend.load import load
    from edgec.frontend.keras.keras3 import is_signature_model
    from edgec.core.tf import keras

    k2 = keras()
    inp = k2.Input((4,), name="x")
    k2.Model(inp, k2.layers.Dense(2, name="head")(k2.layers.Dense(3, name="hidden")(inp))).save(tmp_path / "tfk")
    loaded = load(tmp_path / "tfk")
    assert not is_signature_model(loaded.keras_model) and loaded.keras3_model is None
    assert [layer.name for layer in loaded.keras_model.layers] == ["x", "hidden", "head"]
