"""Pruning and clustering survive into the final int8 .tflite: measured on the converter's output."""

from __future__ import annotations

import numpy as np
import pytest

from compression_support import digits_data, digits_model, int8_tflite

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def fused():
    from edgec.compress.fuse import fuse
    from edgec.core.tf import seed_everything

    seed_everything(0)
    model, fusions = fuse(digits_model())
    return model, fusions


def _layers(tflite: bytes) -> dict[str, dict]:
    from edgec.report.artifact_stats import stats

    return {row["name"]: row for row in stats(tflite)["layers"]}


def _weights(tflite: bytes, layer: str) -> np.ndarray:
    from edgec.core import tflite_model

    m = tflite_model.parse(tflite)
    return next(t.data for t in m.tensors if t.data is not None and t.name.split("/")[-2:-1] == [layer]
                and t.type == "INT8")


def test_fusion_folds_every_batchnorm_and_relu_and_keeps_the_outputs(fused):
    model, fusions = fused
    kinds = sorted((f["kind"], f["removed"]) for f in fusions)
    assert kinds == [("activation", "relu1"), ("activation", "relu2"), ("activation", "relu3"),
                     ("batchnorm", "bn1"), ("batchnorm", "bn2"), ("batchnorm", "bn3")]
    assert not [layer for layer in model.layers if layer.__class__.__name__ in ("BatchNormalization", "ReLU")]
    x = digits_data()["eval_x"]
    original = digits_model().predict(x, verbose=0)
    assert np.max(np.abs(model.predict(x, verbose=0) - original)) < 1e-5


def test_fusion_of_relu6_and_dense_batchnorm_matches_numerically():
    from edgec.compress.fuse import fuse
    from edgec.core.tf import keras, seed_everything

    seed_everything(1)
    k = keras()
    inp = k.Input((6,))
    x = k.layers.Dense(8, name="d")(inp)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.ReLU(6.0, name="r6")(x)
    model = k.Model(inp, k.layers.Dense(3, name="out")(x))
    bn = model.get_layer("bn")
    bn.set_weights([np.random.uniform(0.5, 2, 8), np.random.randn(8), np.random.randn(8),
                    np.random.uniform(0.1, 3, 8)])
    fused, fusions = fuse(model)
    assert [f["removed"] for f in fusions] == ["bn", "r6"] and fused.get_layer("d").activation.__name__ == "relu6"
    data = np.random.default_rng(0).normal(0, 4, (64, 6)).astype(np.float32)
    assert np.allclose(fused.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-4)


def test_prune_half_gives_half_sparsity_in_the_int8_weights(fused):
    from edgec.compress import prune

    wrapped, names = prune.prune(fused[0], sparsity=0.5)
    assert names == ["conv2", "fc1"]  # first (conv1) and last (probs) kept dense by default
    prune.apply_masks(wrapped)
    layers = _layers(int8_tflite(prune.strip(wrapped), digits_data()["cal_x"]))
    for name in names:
        # Quantization can only add zeros (tiny weights round to 0), never remove the mask's zeros.
        assert 0.5 <= layers[name]["sparsity"] <= 0.53, layers[name]
    assert layers["conv1"]["sparsity"] < 0.05 and layers["probs"]["sparsity"] < 0.05


def test_2_4_pruning_leaves_two_zeros_in_every_group_of_four_input_channels(fused):
    from edgec.compress import prune

    wrapped, names = prune.prune(fused[0], structure="2:4")
    prune.apply_masks(wrapped)
    tflite = int8_tflite(prune.strip(wrapped), digits_data()["cal_x"])
    for name in names:
        w = _weights(tflite, name)  # TFLite layout: (out, [kh, kw,] in): input channels last
        groups = w.reshape(-1, w.shape[-1] // 4, 4)
        assert (groups == 0).sum(axis=-1).min() >= 2, name


def test_16_clusters_after_pruning_keep_at_most_16_values_per_channel_and_the_zeros(fused):
    from edgec.compress import cluster
    from edgec.compress import prune

    wrapped, names = prune.prune(fused[0], sparsity=0.5)
    prune.apply_masks(wrapped)
    clustered, cnames = cluster.cluster(prune.strip(wrapped), clusters=16, preserve_sparsity=True)
    layers = _layers(int8_tflite(cluster.strip(clustered), digits_data()["cal_x"]))
    for name in cnames:
        assert layers[name]["unique_values_max_per_channel"] <= 16, layers[name]
        assert layers[name]["sparsity"] >= 0.5, layers[name]
    assert layers["probs"]["unique_values_max_per_channel"] > 16  # unclustered layers really differ


def test_per_channel_clustering_keeps_at_most_n_values_per_conv_channel(fused):
    from edgec.compress import cluster

    clustered, names = cluster.cluster(fused[0], clusters=8, per_channel=True, layers=["conv2"])
    layers = _layers(int8_tflite(cluster.strip(clustered), digits_data()["cal_x"]))
    assert names == ["conv2"] and layers["conv2"]["unique_values_max_per_channel"] <= 8


@pytest.mark.parametrize("selector", ["nosuchlayer", "BatchNormalization", "dw*"])
def test_a_layer_selector_that_matches_nothing_prunable_is_an_input_error(fused, selector):
    from edgec.compress import prune
    from edgec.core.errors import InputError

    with pytest.raises(InputError, match=selector.replace("*", r"\*")) as err:
        prune.prune(fused[0], sparsity=0.5, layers=[selector])
    assert err.value.exit_code == 2


def test_layers_are_selected_by_name_type_and_pattern(fused):
    from edgec.compress.prune import PRUNABLE, select_layers

    model = fused[0]
    assert select_layers(model, ["Dense"], kinds=PRUNABLE, keep_first_last=True, stage="prune") == ["fc1", "probs"]
    assert select_layers(model, ["conv*"], kinds=PRUNABLE, keep_first_last=True, stage="prune") == ["conv1", "conv2"]
    assert select_layers(model, None, kinds=PRUNABLE, keep_first_last=False, stage="prune") == [
        "conv1", "conv2", "fc1", "probs"]


def test_byte_breakdown_adds_up_and_gzip_size_is_deterministic(fused):
    from edgec.report.artifact_stats import stats

    tflite = int8_tflite(fused[0], digits_data()["cal_x"])
    a, b = stats(tflite), stats(tflite)
    parts = a["bytes"]
    assert a["gzip_bytes"] == b["gzip_bytes"] < a["raw_bytes"] == len(tflite)
    assert parts["weights_bytes"] == sum(int(np.prod(row["shape"])) for row in a["layers"])
    assert parts["lut_tables_bytes"] == 0 and parts["rest_bytes"] > 0
    assert sum(v for k, v in parts.items() if k != "total_bytes") == parts["total_bytes"]


def test_fusion_leaves_batchnorms_it_cannot_fold_exactly():
    from edgec.compress.fuse import fuse
    from edgec.core.tf import keras, seed_everything

    seed_everything(3)
    k = keras()
    inp = k.Input((6, 6, 4))
    conv = k.layers.Conv2D(4, 3, padding="same", name="shared")(inp)  # read by a BN and by the Add
    x = k.layers.BatchNormalization(name="bn_a")(conv)
    x = k.layers.Add(name="add")([x, conv])
    x = k.layers.BatchNormalization(name="bn_after_add")(x)  # follows no conv: nothing to fold into
    model = k.Model(inp, k.layers.ReLU(name="relu")(x))
    fused, fusions = fuse(model)
    assert fusions == [] and fused is model
