"""The optimize stage runner, low-rank factorization and collaborative QAT, checked on the int8 artifact."""

from __future__ import annotations

import time

import numpy as np
import pytest

from compression_support import digits_data, digits_model, int8_tflite, tflm_top1

pytestmark = pytest.mark.toolchain


def _layers(tflite: bytes) -> dict[str, dict]:
    from edgec.report.artifact_stats import stats

    return {row["name"].removeprefix("quant_"): row for row in stats(tflite)["layers"]}


def test_optimize_runs_fuse_prune_cluster_distill_and_the_artifact_has_what_was_asked():
    from edgec.compress.optimize import optimize
    from edgec.compress.recipe import Recipe

    d = digits_data()
    source = digits_model()
    start = time.monotonic()
    model, stages = optimize(source, Recipe(prune=0.5, clusters=16, finetune_epochs=2),
                             train_x={"image": d["cal_x"]}, train_y=None)
    wall = time.monotonic() - start
    assert [s["name"] for s in stages] == ["fuse", "prune", "finetune", "cluster", "finetune"]
    assert len(stages[0]["fusions"]) == 6
    # Stage times are back to back: together they are the call's wall-clock time, less its setup
    # (0.15 of 21.9 s here).
    assert 0.9 * wall <= sum(s["seconds"] for s in stages) <= wall + 0.003 * len(stages)
    assert all(s["seconds"] > 0.05 for s in stages if s["name"] == "finetune")  # two epochs each
    assert {s.get("mode") for s in stages if s["name"] == "finetune"} == {"distillation"}
    tflite = int8_tflite(model, d["cal_x"])
    layers = _layers(tflite)
    for name in ("conv2", "fc1"):
        assert layers[name]["sparsity"] >= 0.5 and layers[name]["unique_values_max_per_channel"] <= 16
    assert np.mean(tflm_top1(tflite, d["eval_x"]) == d["eval_y"]) >= 0.97


def test_pcqat_keeps_the_zeros_and_the_clusters_of_every_compressed_layer():
    from edgec.compress.optimize import optimize
    from edgec.compress.recipe import Recipe

    d = digits_data()
    model, stages = optimize(digits_model(), Recipe(prune=0.5, clusters=8, finetune_epochs=1, qat="auto"),
                             train_x=d["cal_x"], train_y=d["cal_y"])
    assert [s["name"] for s in stages] == ["fuse", "prune", "cluster", "qat", "finetune"]
    assert stages[3]["mode"] == "pcqat" and stages[4]["mode"] == "supervised"
    layers = _layers(int8_tflite(model, d["cal_x"]))
    for name in ("conv2", "fc1"):  # TF-MOT alone loses fc1's zeros here (see finetune.py)
        assert layers[name]["sparsity"] >= 0.5 and layers[name]["unique_values_max_per_channel"] <= 8, layers[name]


def test_low_rank_factorizes_only_where_it_saves_parameters_and_keeps_the_function():
    from edgec.compress.lowrank import factorize
    from edgec.core.tf import keras, seed_everything

    seed_everything(2)
    k = keras()
    inp = k.Input((8, 8, 16))
    x = k.layers.Conv2D(32, 1, strides=2, padding="same", activation="relu", name="pw")(inp)
    x = k.layers.Flatten()(x)
    model = k.Model(inp, k.layers.Dense(10, name="head")(k.layers.Dense(48, name="fc")(x)))
    rng = np.random.default_rng(0)
    model.get_layer("pw").set_weights([(rng.normal(size=(16, 3)) @ rng.normal(size=(3, 32)))
                                       .reshape(1, 1, 16, 32).astype(np.float32), np.ones(32, np.float32)])
    model.get_layer("fc").set_weights([(rng.normal(size=(512, 5)) @ rng.normal(size=(5, 48))).astype(np.float32),
                                       np.zeros(48, np.float32)])
    factored, report = factorize(model, energy=0.99999)
    ranks = {r["name"]: r["rank"] for r in report}
    assert ranks == {"pw": 3, "fc": 5}  # head (10 outputs, full rank) would grow: left alone
    assert all(r["params_after"] < r["params_before"] for r in report)
    assert factored.count_params() < model.count_params()
    data = rng.normal(size=(8, 8, 8, 16)).astype(np.float32)
    assert np.allclose(factored.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-3, atol=1e-3)


def test_low_rank_at_full_energy_leaves_the_digits_model_alone():
    from edgec.compress.lowrank import factorize

    _, report = factorize(digits_model(), energy=1.0)
    assert report == []


def test_fine_tuning_without_samples_is_an_input_error():
    from edgec.core.errors import InputError
    from edgec.compress.optimize import optimize
    from edgec.compress.recipe import Recipe

    with pytest.raises(InputError, match="training samples") as err:
        optimize(digits_model(), Recipe(prune=0.5, finetune_epochs=1), train_x=None)
    assert err.value.exit_code == 2


def test_same_recipe_and_data_give_byte_identical_artifacts():
    from edgec.compress import lut
    from edgec.compress.optimize import optimize
    from edgec.compress.recipe import Recipe

    from compression_support import quantize_inputs

    d = digits_data()
    outputs = []
    for _ in range(2):
        model, _ = optimize(digits_model(), Recipe(prune=0.5, clusters=16, finetune_epochs=1), train_x=d["cal_x"])
        tflite = int8_tflite(model, d["cal_x"])
        outputs.append(lut.compress(tflite, quantize_inputs(tflite, d["eval_x"][:4]))[0])
    assert outputs[0] == outputs[1]
