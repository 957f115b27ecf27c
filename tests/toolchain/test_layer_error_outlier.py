"""Per-layer int8 error: a layer with a huge activation outlier is named, and keeping it in float fixes it."""

import numpy as np
import pytest

from edgec.core.errors import InputError

pytestmark = pytest.mark.toolchain


def _outlier_model():
    """pre -> mixer (channel 0 scaled 2000x: the outlier) -> head (ignores channel 0) -> softmax."""
    from edgec.core.tf import keras, seed_everything

    K = keras()
    seed_everything(0)
    x = K.Input((8,), name="x")
    h = K.layers.Dense(16, activation="relu", name="pre")(x)
    m = K.layers.Dense(16, name="mixer")(h)
    y = K.layers.Dense(4, activation="softmax", name="head")(m)
    model = K.Model(x, y)
    w, b = model.get_layer("mixer").get_weights()
    w[:, 0] *= 2000.0  # one channel spans +-thousands; the other 15 carry the signal at +-1
    model.get_layer("mixer").set_weights([w, b])
    hw, hb = model.get_layer("head").get_weights()
    hw[0, :] = 0.0
    model.get_layer("head").set_weights([hw, hb])
    return model


@pytest.fixture(scope="module")
def outlier():
    from edgec.quantize import layer_error

    model = _outlier_model()
    rng = np.random.default_rng(0)
    data = rng.normal(size=(192, 8)).astype(np.float32)
    calibration, evaluation = data[:64], data[64:]
    analysis = layer_error.analyze(model, {"x": calibration})
    return model, calibration, evaluation, analysis


def test_outlier_layer_is_named_worst_by_per_layer_analysis(outlier):
    _, _, _, analysis = outlier
    worst = analysis.worst(1)[0]
    assert worst["layer"] == "mixer"
    assert worst["noise_to_signal"] > 1.0  # the signal channels are rounded away
    others = [x for x in analysis.layers if x["layer"] != "mixer"]
    assert others and all(x["noise_to_signal"] < 0.1 for x in others)
    section = analysis.to_json()
    assert section["layers"][0]["layer"] == "mixer" and "mixer" in section["suspicious"]


def test_max_accuracy_drop_keeps_the_outlier_layer_in_float_and_recovers_top1(outlier):
    from edgec.quantize import layer_error

    model, calibration, evaluation, analysis = outlier
    artifact, section = layer_error.fit_accuracy_drop(model, {"x": calibration}, {"x": evaluation},
                                                      max_drop=0.02, analysis=analysis)
    baseline, final = section["steps"][0], section["steps"][-1]
    assert baseline["kept_float"] == [] and baseline["drop"] > 0.3  # plain int8 is broken
    assert final["kept_float"] == ["mixer"] and final["drop"] <= 0.02 and section["met"]
    assert section["cost"]["bytes"] > 0  # float weights cost flash
    assert final["p50_ms"] > 0
    # The returned bytes are the final model: re-run it independently of the loop.
    reference = model.predict(evaluation, verbose=0).argmax(1)
    out = layer_error.litert_predict(artifact, [evaluation])[0]
    assert np.mean(out.argmax(1) == reference) >= 0.98


def test_keep_float_flag_names_a_layer_and_unknown_layer_is_input_error(outlier):
    from edgec.quantize import layer_error

    model, calibration, evaluation, analysis = outlier
    _, section = layer_error.fit_accuracy_drop(model, {"x": calibration}, {"x": evaluation},
                                               keep_float=["mixer"], analysis=analysis)
    assert [s["kept_float"] for s in section["steps"]] == [[], ["mixer"]]
    assert section["steps"][1]["drop"] <= 0.02
    with pytest.raises(InputError, match="no quantized layer named 'mixr'.*mixer"):
        layer_error.resolve_layers(analysis, ["mixr"])


def test_float_io_targets_get_float_inputs_and_outputs_after_keep_float(outlier):
    from ai_edge_litert.interpreter import Interpreter

    from edgec.quantize import layer_error

    model, calibration, evaluation, _ = outlier
    analysis = layer_error.analyze(model, calibration, samples=32, io_int8=False)
    assert analysis.worst(1)[0]["layer"] == "mixer"
    it = Interpreter(model_content=layer_error.quantize_keeping_float(analysis, [analysis.worst(1)[0]["tensor"]]))
    assert it.get_input_details()[0]["dtype"] == np.float32 and it.get_output_details()[0]["dtype"] == np.float32


def test_int16x8_refused_by_the_converter_is_reported_not_raised():
    """HARD_SWISH has no 16x8 kernel in the converter: the int16 step reports why and ships nothing."""
    from edgec.quantize import layer_error
    from edgec.core.tf import keras, seed_everything

    K = keras()
    L = K.layers
    seed_everything(0)
    x = K.Input((8,), name="x")
    h = L.Dense(16, name="pre")(x)
    h = L.Multiply()([h, L.Rescaling(1.0 / 6.0)(L.ReLU(max_value=6.0)(L.Rescaling(1.0, offset=3.0)(h)))])
    m = L.Dense(16, name="mixer")(h)  # x * relu6(x + 3) / 6 above: the converter makes it HARD_SWISH
    model = K.Model(x, L.Dense(4, activation="softmax", name="head")(m))
    w, b = model.get_layer("mixer").get_weights()
    w[:, 0] *= 500.0
    model.get_layer("mixer").set_weights([w, b])
    hw, hb = model.get_layer("head").get_weights()
    hw[0, :] = 0.0
    model.get_layer("head").set_weights([hw, hb])
    data = np.random.default_rng(0).normal(size=(192, 8)).astype(np.float32)
    labels = model.predict(data[64:], verbose=0).argmax(1)
    wide, step = layer_error._int16x8_step(model, {"x": data[:64]}, [data[64:]], labels, 1.0, True)
    assert wide is None and "HARD_SWISH" in step["error"]  # reported as tried, never shipped


def test_unmet_drop_ships_the_best_step_tried(outlier):
    from edgec.quantize import layer_error

    model, calibration, evaluation, analysis = outlier
    # Keeping only 'pre' in float cannot fix the outlier in 'mixer', and no further layer may be added.
    artifact, section = layer_error.fit_accuracy_drop(model, {"x": calibration}, {"x": evaluation}, max_drop=0.02,
                                                      keep_float=["pre"], max_layers=0, analysis=analysis)
    drops = [s["drop"] for s in section["steps"]]
    assert len(drops) == 2 and not section["met"] and min(drops) > 0.02
    best = drops.index(min(drops))
    assert section["shipped_step"] == best and section["kept_float"] == section["steps"][best]["kept_float"]
    reference = model.predict(evaluation, verbose=0).argmax(1)
    shipped = layer_error.litert_predict(artifact, [evaluation])[0].argmax(1)
    assert np.isclose(np.mean(shipped == reference), section["steps"][best]["top1"])
