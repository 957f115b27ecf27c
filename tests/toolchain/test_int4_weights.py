"""int4 weights: TFLite's INT4 tensors run in TFLite Micro, and edgec's C is bit-exact with it.

Real toolchain: a tf_keras model projected on the int4 grid, converted by the TFLite converter,
rewritten by edgec.compress.int4, run in the TFLite Micro Python interpreter and compiled by gcc.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgec.compress import int4 as quantize_int4
from edgec.backends.c import generate
from edgec.backends.c.hostcheck import compile_host, device_check, random_inputs, run_host, tflm_outputs
from edgec.core.errors import InputError
from edgec.compress.fuse import fuse
from edgec.compress.optimize import optimize
from edgec.compress.recipe import Recipe
from edgec.core.tf import keras, seed_everything
from edgec.core.tflite_model import parse
from edgec.runtimes.tflm_arena import measure_arena
from edgec.runtimes.tflm import run_tflm

import cbackend_support as models
from tests.conftest import MLPERF, needs_mlperf

pytestmark = pytest.mark.toolchain


def _model():
    """Every int4 case: odd and even conv row lengths (a row may start in a high nibble), 1x1,
    padding, stride 2, depthwise with multiplier 1 and 2, and a dense layer."""
    k = keras()
    inp = k.Input((9, 9, 3))
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = k.layers.Conv2D(6, 1, name="c2")(x)
    x = k.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, name="dw2")(x)
    x = k.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="c3")(x)
    x = k.layers.Flatten()(x)
    out = k.layers.Dense(7, name="fc")(x)
    return k.Model(inp, out)


@pytest.fixture(scope="module")
def int8_and_int4() -> tuple[bytes, bytes, dict]:
    seed_everything(0)
    model = _model()
    quantize_int4.project_layers(model, quantize_int4.eligible_layers(model))
    int8 = models.to_int8_tflite(model)
    int4, report = quantize_int4.pack(int8, None)
    return int8, int4, report, model


def test_projected_weights_pack_losslessly_into_int4_tensors(int8_and_int4):
    int8, int4, report, _ = int8_and_int4
    assert set(report["layers"]) == {"c1", "dw", "c2", "dw2", "c3", "fc"}
    # round(k * 127 / 7) maps back to k: far from a rounding boundary (0.5 steps).
    assert max(r["max_rounding_steps"] for r in report["layers"].values()) < 0.05
    m = parse(int4)
    kinds = sorted({op.name for op in m.operators if len(op.inputs) > 1 and m.tensors[op.inputs[1]].type == "INT4"})
    assert kinds == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    total = sum(r["weights"] for r in report["layers"].values())
    assert len(int8) - len(int4) >= total // 2 - 64  # half a byte per weight, less flatbuffer padding
    fc = next(m.tensors[op.inputs[1]] for op in m.operators if op.name == "FULLY_CONNECTED")
    assert fc.scales.size == 1  # TFLite Micro takes int4 FULLY_CONNECTED weights per tensor only


def test_int4_model_in_tflite_micro_is_as_close_to_float_as_int8(int8_and_int4):
    """Both files hold the float model's (projected) weights: int4 exactly, int8 as round(k * 127 / 7).
    A wrong nibble order, sign extension or bias scale would put int4 far off."""
    int8, int4, _, model = int8_and_int4
    x = random_inputs(int8, 200, seed=3)
    errors = {}
    for name, tflite in (("int8", int8), ("int4", int4)):
        m = parse(tflite)
        inp, out = m.tensors[m.inputs[0]], m.tensors[m.outputs[0]]
        real_x = (x.astype(np.float32) - inp.zero_points[0]) * inp.scales[0]
        got = np.concatenate(run_tflm(tflite, [s.reshape(inp.shape) for s in x])).reshape(len(x), -1)
        real = (got.astype(np.float32) - out.zero_points[0]) * out.scales[0]
        expected = model.predict(real_x.reshape((len(x),) + tuple(inp.shape[1:])), verbose=0)
        errors[name] = float(np.sqrt(np.mean((real - expected) ** 2)))
    assert errors["int4"] <= 1.2 * errors["int8"], errors


def test_generated_c_with_packed_nibbles_is_bit_exact_with_tflite_micro(int8_and_int4, tmp_path):
    _, int4, _, _ = int8_and_int4
    info = generate(int4, tmp_path)
    source = (tmp_path / "model.c").read_text()
    assert source.count("edgec_conv_s4(") == 3 and source.count("edgec_depthwise_s4(") == 2
    assert "edgec_fc_s4(" in source and "static const uint8_t" in source
    x = random_inputs(int4, 300, seed=7)
    x[0], x[1] = -128, 127  # saturating extremes
    np.testing.assert_array_equal(run_host(compile_host(tmp_path), x), tflm_outputs(int4, x))
    # No decode buffer: TFLite Micro unpacks every int4 layer into its arena, edgec's C does not.
    assert info["arena_bytes"] < measure_arena(int4)["arena_bytes"]


def test_pack_names_a_layer_without_int8_weights():
    int8 = models.to_int8_tflite(_model())
    with pytest.raises(InputError, match="int4 weights: no int8 .* for nope"):
        quantize_int4.pack(int8, ["c1", "nope"])


def test_optimize_trains_int4_layers_on_their_grid():
    model = _model()
    x = np.random.default_rng(0).normal(size=(64, 9, 9, 3)).astype(np.float32)
    compressed, stages = optimize(model, Recipe(int4=["Conv2D", "fc"], finetune_epochs=1), train_x=x)
    layers = next(s["layers"] for s in stages if s["name"] == "int4")
    assert layers == ["c1", "c2", "c3", "fc"]
    for name in layers:
        layer = compressed.get_layer(name)
        kernel = layer.get_weights()[0]
        np.testing.assert_allclose(quantize_int4.project_kernel(kernel, layer.__class__.__name__), kernel,
                                   atol=1e-6)
    assert any(s["name"] == "finetune" for s in stages)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
def test_int4_c_is_bit_exact_on_emulated_cortex_m4(int8_and_int4, tmp_path):
    """The DSP build (requantization shortcut, SIMD int8 kernels beside the int4 ones) on an M4."""
    _, int4, _, _ = int8_and_int4
    info = generate(int4, tmp_path)
    x = random_inputs(int4, 20, seed=13, extremes=True)
    result = device_check(tmp_path, "qemu-mps2-an386", x, tflm_outputs(int4, x), macs=info["macs"])
    assert result["qemu_bit_exact"] == len(x)


@needs_mlperf
def test_resnet8_int4_at_a_sixth_of_the_float_file_runs_bit_exact_in_our_c(tmp_path):
    """The 1/6 point of the README's ResNet-8 front (tools/bench_compression.py resnet8-int4-sixth-full)
    without its training: the same layers on the int4 grid fit 1/6 of the float .tflite, and the generated
    C is bit-exact with TFLite Micro on that file (the bench checks all 10,000 CIFAR-10 test images)."""
    from tools.bench_compression import SIXTH_INT4, convert, ship

    model = keras().models.load_model(MLPERF / "pretrainedResnet.h5", compile=False)
    fused, _ = fuse(model)  # as the optimize stage does before choosing layers
    quantize_int4.project_layers(fused, SIXTH_INT4)
    x = np.random.default_rng(0).uniform(0, 255, (32, 32, 32, 3)).astype(np.float32)
    _, final, report, _, _ = ship(fused, x, SIXTH_INT4, x[:8])
    assert sorted(report["layers"]) == sorted(SIXTH_INT4)
    assert b"TFLM_DECODE" not in final  # int4 alone, no LUT: our C backend runs the very file
    assert len(final) * 6 <= len(convert(model, None))
    generate(final, tmp_path)
    exe = compile_host(tmp_path)
    inputs = random_inputs(final, 6, seed=5, extremes=True)
    assert np.array_equal(run_host(exe, inputs), tflm_outputs(final, inputs))
