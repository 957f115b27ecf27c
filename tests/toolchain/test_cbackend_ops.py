"""The generated C agrees byte for byte with TFLite Micro on every operator it supports.

Real toolchain: tf_keras models converted by the TFLite converter, C compiled by the system gcc,
reference outputs from the TFLite Micro Python interpreter.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from edgec.backends.c import OPS, generate
from edgec.backends.c.hostcheck import compile_host, device_check, input_quantization, random_inputs, run_host, tflm_outputs
from edgec.core.errors import InputError
from edgec.core.tflite_model import parse

import cbackend_support as models

pytestmark = pytest.mark.toolchain

REQUIRED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                "ADD", "MUL", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "CONCATENATION", "PAD",
                "MEAN", "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6"}


@pytest.fixture(scope="module")
def tflites() -> dict[str, bytes]:
    return {"conv": models.to_int8_tflite(models.conv_model()),
            "merge": models.to_int8_tflite(models.merge_model()),
            "residual": models.to_int8_tflite(models.residual_model())}


@pytest.fixture(scope="module")
def float_tflites() -> dict[str, bytes]:
    """Converted with float32 input and/or output: QUANTIZE float32 -> int8 in, DEQUANTIZE out."""
    return {"identity": models.to_int8_tflite(models.identity_model(), float_input=True, float_output=True),
            "conv": models.to_int8_tflite(models.small_conv_model(), float_input=True, float_output=True),
            "float_out": models.to_int8_tflite(models.small_conv_model(), float_output=True)}


def _inputs(tflite: bytes, count: int) -> np.ndarray:
    x = random_inputs(tflite, count, seed=7)
    x[0], x[1] = -128, 127  # saturating extremes
    return x


@pytest.mark.parametrize("name", ["conv", "merge", "residual"])
def test_generated_c_is_bit_exact_with_tflite_micro(tflites, tmp_path, name):
    tflite = tflites[name]
    generate(tflite, tmp_path)
    x = _inputs(tflite, 300)
    ours = run_host(compile_host(tmp_path), x)
    np.testing.assert_array_equal(ours, tflm_outputs(tflite, x))


def test_test_models_cover_every_required_operator(tflites, float_tflites):
    used = {op.name for t in [*tflites.values(), *float_tflites.values()] for op in parse(t).operators}
    assert REQUIRED_OPS <= used, REQUIRED_OPS - used
    assert REQUIRED_OPS <= set(OPS)


def test_generated_folder_keeps_the_firmware_contract(tflites, tmp_path):
    info = generate(tflites["conv"], tmp_path)
    header = (tmp_path / "model.h").read_text()
    for macro in ("EDGEC_INPUT_BYTES 396", "EDGEC_OUTPUT_BYTES 5", "EDGEC_ARENA_BYTES",
                  "EDGEC_INPUT_SHAPE {1, 12, 11, 3}", "EDGEC_INPUT_SCALE", "EDGEC_INPUT_ZERO_POINT",
                  "EDGEC_OUTPUT_SCALE 0.00390625f", "EDGEC_OUTPUT_ZERO_POINT (-128)"):
        assert macro in header
    assert "int edgec_invoke(const int8_t *input, int8_t *output);" in header
    for line in ("EDGEC_INPUT_FLOAT 0", "EDGEC_OUTPUT_FLOAT 0", "typedef int8_t edgec_input_t;",
                 "typedef int8_t edgec_output_t;"):
        assert line in header
    assert int(re.search(r"EDGEC_ARENA_BYTES (\d+)", header).group(1)) == info["arena_bytes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(info["files"])
    compile_host(tmp_path, extra_flags=("-Werror", "-pedantic"))  # clean C99; built in host/
    assert sorted(p.name for p in tmp_path.glob("*.c")) == sorted(f for f in info["files"] if f.endswith(".c"))
    source = (tmp_path / "model.c").read_text()
    assert "malloc" not in source and info["ops"] == [op.name for op in parse(tflites["conv"]).operators]
    assert info["macs"] > 0 and info["weight_bytes"] > 0


def test_generation_is_deterministic(tflites, tmp_path):
    generate(tflites["merge"], tmp_path / "a")
    generate(tflites["merge"], tmp_path / "b")
    for p in (tmp_path / "a").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()


@pytest.mark.parametrize("name", ["conv", "merge"])
def test_static_arena_reuses_buffers(tflites, name):
    from edgec.backends.c import ops
    from edgec.backends.c.plan import plan_memory

    model = parse(tflites[name])
    plan = plan_memory(model, scratch_bytes=lambda op, in_place: ops.scratch_bytes(model, op, in_place),
                       row_in_place=lambda op: ops.row_in_place(model, op))
    assert "CONV_2D" in {model.operators[i].name for i in plan.in_place}  # a conv runs in place
    arena = [b for b in plan.buffers.values() if b.where == "arena" and b.last >= 0]
    assert plan.arena_bytes < sum(b.size for b in arena)
    for i, a in enumerate(arena):  # buffers alive at the same time never overlap
        for b in arena[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


def test_operator_without_kernel_is_an_input_error_naming_it(tmp_path):
    L = models.keras().layers
    models.seed_everything(3)
    inp = L.Input((8, 8, 2))
    model = models.keras().Model(inp, L.Conv2D(2, 3, dilation_rate=2, padding="same")(inp))
    out = tmp_path / "c"
    with pytest.raises(InputError, match=r"SPACE_TO_BATCH_ND.*tflm format") as err:
        generate(models.to_int8_tflite(model), out)
    assert err.value.exit_code == 2
    assert not out.exists()  # nothing half-written


def _round_half_away(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64)  # |v| + 0.5 is exact in float64, not always in float32
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


@pytest.mark.parametrize("name", ["identity", "conv", "float_out"])
def test_float_io_model_is_bit_exact_with_tflite_micro(float_tflites, tmp_path, name):
    tflite = float_tflites[name]
    info = generate(tflite, tmp_path)
    assert info["ops"][-1] == "DEQUANTIZE" and info["output_type"] == "float32"
    x = random_inputs(tflite, 300, seed=5, extremes=True)
    if name != "float_out":
        assert info["ops"][0] == "QUANTIZE" and x.dtype == np.float32
        scale, zero = input_quantization(tflite)
        v = x / scale  # the quotient QUANTIZE rounds, in float32 like the reference
        assert (v == np.floor(v) + 0.5).sum() > 1000  # exact rounding ties
        assert (v < -1000).sum() > 500 and (v > 1000).sum() > 500  # far outside [-128, 127]
    ours = run_host(compile_host(tmp_path, extra_flags=("-Werror", "-pedantic")), x)
    reference = tflm_outputs(tflite, x)
    assert ours.dtype == reference.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.uint32), reference.view(np.uint32))
    if name == "identity":  # the output is the quantized input: ties round away from zero
        q = np.clip(_round_half_away(v) + zero, -128, 127).reshape(len(x), -1)
        np.testing.assert_array_equal(ours, (scale * (q - zero)).astype(np.float32))


def test_float_io_header_declares_float_buffers(float_tflites, tmp_path):
    generate(float_tflites["conv"], tmp_path / "conv")
    header = (tmp_path / "conv" / "model.h").read_text()
    for line in ("EDGEC_INPUT_FLOAT 1", "EDGEC_INPUT_ELEMENTS 50", "EDGEC_INPUT_BYTES 200",
                 "EDGEC_OUTPUT_FLOAT 1", "EDGEC_OUTPUT_BYTES 12", "typedef float edgec_input_t;",
                 "typedef float edgec_output_t;",
                 "int edgec_invoke(const edgec_input_t *input, edgec_output_t *output);"):
        assert line in header
    assert "EDGEC_INPUT_SCALE" not in header and "EDGEC_OUTPUT_SCALE" not in header
    generate(float_tflites["float_out"], tmp_path / "mixed")
    header = (tmp_path / "mixed" / "model.h").read_text()
    assert "typedef int8_t edgec_input_t;" in header and "EDGEC_INPUT_SCALE" in header
    assert "typedef float edgec_output_t;" in header and "EDGEC_OUTPUT_BYTES 12" in header


def test_quantize_saturates_where_the_reference_is_undefined(float_tflites, tmp_path):
    # TFLite's unchecked float -> int32 cast has no defined result past 2^31 or for NaN.
    tflite = float_tflites["identity"]
    generate(tflite, tmp_path)
    scale, zero = input_quantization(tflite)
    x = np.full((1, 3, 8), np.nan, np.float32)
    x.reshape(-1)[:6] = [np.inf, 1e30, 2.0 ** 31 * scale, -np.inf, -1e30, -(2.0 ** 31) * scale]
    q = run_host(compile_host(tmp_path), x)[0] / scale + zero
    np.testing.assert_allclose(q, [127] * 3 + [-128] * 3 + [zero] * 18, atol=1e-3)


def test_c_runtime_passes_float_io_through(float_tflites, tmp_path):
    from edgec.backends.c.export_c import predict

    tflite = float_tflites["conv"]
    generate(tflite, tmp_path)
    x = random_inputs(tflite, 8, seed=9)
    (y,) = predict(tmp_path / "model.h", {"input": x})
    assert y.dtype == np.float32 and y.shape == (8, 3)
    np.testing.assert_array_equal(y.reshape(8, -1), tflm_outputs(tflite, x))


def test_float_tensor_inside_the_model_is_refused_naming_the_operator(tmp_path):
    tf = models.tensorflow()
    L = models.keras().layers
    models.seed_everything(4)
    inp = L.Input((4,))
    conv = tf.lite.TFLiteConverter.from_keras_model(models.keras().Model(inp, L.Dense(3)(inp)))
    with pytest.raises(InputError, match=r"FULLY_CONNECTED.*FLOAT32.*tflm format") as err:
        generate(conv.convert(), tmp_path / "c")  # a float model: no QUANTIZE, float all through
    assert err.value.exit_code == 2
    assert not (tmp_path / "c").exists()


def test_not_a_tflite_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        generate(b"definitely not a model", tmp_path)


# Cortex-M4 and M7 (DSP, Armv7E-M), M33 (DSP, Armv8-M with TrustZone) and M55 (MVE): all four cores.
QEMU_MACHINES = ["qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
@pytest.mark.parametrize("machine", QEMU_MACHINES)
def test_optimized_kernels_are_bit_exact_on_emulated_cortex_m(tflites, tmp_path, machine):
    from edgec.device.firmware.build import build_firmware
    from edgec.device.firmware.run import run_on_device

    for name, tflite in tflites.items():
        generate(tflite, tmp_path / name)
        image = build_firmware(tmp_path / name, machine, flash_bytes=1 << 20, ram_bytes=1 << 20,
                               out=tmp_path / f"{name}-fw")
        x = _inputs(tflite, 20)
        runs = run_on_device(image, [s.tobytes() for s in x])
        ours = np.stack([np.frombuffer(r.output, np.int8) for r in runs])
        np.testing.assert_array_equal(ours, tflm_outputs(tflite, x), err_msg=f"{name} on {machine}")


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
def test_fully_connected_weights_widen_to_int16_only_with_flash_to_spare(tflites, tmp_path):
    from edgec.device.firmware.build import build_firmware
    from edgec.device.firmware.run import run_on_device

    # FULLY_CONNECTED 54 -> 67 -> 16 -> 5: row and input remainders; the RELU outputs rewritten to
    # clamp at -60 (clamp_relu_outputs): the clamped requantization path of the FC kernels too
    tflite = models.clamp_relu_outputs(tflites["conv"])
    weights = generate(tflite, tmp_path / "int8")["weight_bytes"]
    assert "edgec_fc_s8_w16" not in (tmp_path / "int8" / "model.c").read_text()
    generate(tflite, tmp_path / "small", flash_bytes=weights)  # no room for twice the FC weights
    assert "edgec_fc_s8_w16" not in (tmp_path / "small" / "model.c").read_text()
    wide = generate(tflite, tmp_path / "wide", flash_bytes=1 << 20)
    source = (tmp_path / "wide" / "model.c").read_text()
    assert "edgec_fc_s8_w16" in source
    assert len(re.findall(r"edgec_fc_params \w+ = \{[^}]*, -60, 127, 1\};", source)) == 2  # the RELU layers
    assert wide["weight_bytes"] > weights
    x = _inputs(tflite, 40)
    expected = tflm_outputs(tflite, x)
    np.testing.assert_array_equal(run_host(compile_host(tmp_path / "wide"), x), expected)  # portable C
    for machine in ("qemu-mps2-an386", "qemu-mps3-an547"):  # the DSP assembly loop; M55's C loop
        image = build_firmware(tmp_path / "wide", machine, flash_bytes=1 << 20, ram_bytes=1 << 20,
                               out=tmp_path / f"fw-{machine}")
        runs = run_on_device(image, [s.tobytes() for s in x])
        ours = np.stack([np.frombuffer(r.output, np.int8) for r in runs])
        np.testing.assert_array_equal(ours, expected, err_msg=machine)


def test_conv_weights_widen_to_int16_only_for_dsp_cores_with_flash_to_spare(tflites, tmp_path):
    tflite = tflites["conv"]
    weights = generate(tflite, tmp_path / "int8", flash_bytes=1 << 20)["weight_bytes"]  # no core named
    for name, kwargs in {"m55": {"core": "cortex-m55"}, "small": {"core": "cortex-m4", "flash_bytes": weights}}.items():
        info = generate(tflite, tmp_path / name, **{"flash_bytes": 1 << 20, **kwargs})
        assert "conv" not in info["int16_weights"], name
        assert "edgec_conv_s8_w16" not in (tmp_path / name / "model.c").read_text(), name
    wide = generate(tflite, tmp_path / "wide", flash_bytes=1 << 20, core="cortex-m4")
    assert "conv" in wide["int16_weights"] and wide["weight_bytes"] > weights
    assert "edgec_conv_s8_w16" in (tmp_path / "wide" / "model.c").read_text()
    # The plan and the emitter share one per-layer choice: the depth-multiplier-2 depthwise layer
    # (8 input channels, 16 out) keeps the int8 kernel, the multiplier-1 one takes the int16 kernel.
    from edgec.backends.c import ops
    model = parse(tflite)
    depthwise = [op for op in model.operators if op.name == "DEPTHWISE_CONV_2D"]
    channels = [(model.tensors[op.inputs[0]].shape[3], model.tensors[op.outputs[0]].shape[3]) for op in depthwise]
    assert channels == [(8, 16), (16, 16)]
    assert [ops.int16_kernel(model, op, False, True) for op in depthwise] == [False, True]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
def test_int16_conv_weights_are_bit_exact_on_the_host_and_every_core(tflites, tmp_path):
    """The four-pixel DSP kernel (the M4's; the M7 and M33 build the same C) and its portable loop
    (host gcc for every test model; the M55, whose MVE build takes it, too), the emulated cores on
    the odd shapes of cbackend_support.odd_conv_model (which also has clamped and saturating
    convolution and depthwise layers); MLPerf's models run on the M4 in test_cli_chips and the
    bench."""
    from edgec.device.firmware.build import build_firmware
    from edgec.device.firmware.run import run_on_device

    # the odd model with its RELU/RELU6 outputs rewritten to clamp (rq_mode 1, clamp_relu_outputs):
    # both requantization paths of the convolution and depthwise kernels
    cases = {**tflites, "odd": models.clamp_relu_outputs(models.to_int8_tflite(models.odd_conv_model()))}
    for name, tflite in cases.items():
        info = generate(tflite, tmp_path / name, flash_bytes=1 << 20, core="cortex-m4")
        assert "conv" in info["int16_weights"], name
        if name == "odd":  # three layers clamp to [-60, 127] (rq_mode 1), the others saturate (2)
            modes = re.findall(r"edgec_conv_params \w+ = \{[^}]*, (-?\d+), (-?\d+), ([012])\};",
                               (tmp_path / name / "model.c").read_text())
            assert sorted(modes) == [("-128", "127", "2")] * 5 + [("-60", "127", "1")] * 3, modes
        x = _inputs(tflite, 24)
        expected = tflm_outputs(tflite, x)
        np.testing.assert_array_equal(run_host(compile_host(tmp_path / name), x), expected, err_msg=name)
        for machine in ("qemu-mps2-an386", "qemu-mps3-an547") if name == "odd" else ():
            image = build_firmware(tmp_path / name, machine, flash_bytes=1 << 20, ram_bytes=1 << 20,
                                   out=tmp_path / f"{name}-{machine}")
            runs = run_on_device(image, [s.tobytes() for s in x])
            ours = np.stack([np.frombuffer(r.output, np.int8) for r in runs])
            np.testing.assert_array_equal(ours, expected, err_msg=f"{name} on {machine}")


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
def test_depthwise_3x3_rows_of_every_width_are_bit_exact_on_the_host_m4_and_m33(tmp_path):
    """edgec_depthwise3x3.c's assembly row loop on the emulated Cortex-M4 and M33 and its portable
    loop on the host, against TFLite Micro: rows of 1 to 11 pixels (every remainder after the four-pixel
    loop, the five-pixel block), 'same' and 'valid', saturating (rq_mode 2) and clamped (rq_mode 1)
    requantization, all three rotations of the row slots (every layer has at least six rows)."""
    from edgec.backends.c import ops
    from edgec.device.firmware.build import build_firmware
    from edgec.device.firmware.run import run_on_device

    for width in (11, 10):
        tflite = models.clamp_relu_outputs(models.to_int8_tflite(models.depthwise_rows_model(width)))
        model = parse(tflite)
        layers = [op for op in model.operators if op.name == "DEPTHWISE_CONV_2D"]
        rows = []  # (pixels per output row, requantization path)
        for op in layers:
            assert ops.int16_kernel(model, op, False, True), op.index
            bounds = ops.act_bounds(None, op, model.tensors[op.outputs[0]])
            rows.append((model.tensors[op.outputs[0]].shape[2], 1 if bounds == (-60, 68) else 2))
        assert rows == ([(11, 2), (9, 2), (7, 1), (5, 1), (5, 2), (3, 1), (1, 1)] if width == 11 else
                        [(10, 1), (8, 2), (6, 1), (4, 1), (2, 2)]), rows
        out = tmp_path / str(width)
        generate(tflite, out, flash_bytes=1 << 20, core="cortex-m4")
        assert (out / "model.c").read_text().count("edgec_depthwise_s8_w16(") == len(layers)
        x = _inputs(tflite, 16)
        expected = tflm_outputs(tflite, x)
        assert len({row.tobytes() for row in expected}) > 8  # the outputs vary with the input
        np.testing.assert_array_equal(run_host(compile_host(out), x), expected, err_msg=f"host {width}")
        # Cortex-M4; the M33 (ARMv8-M, the same assembly) on the model with the five-pixel block
        for machine in ("qemu-mps2-an386", "qemu-mps2-an505") if width == 11 else ("qemu-mps2-an386",):
            image = build_firmware(out, machine, flash_bytes=1 << 20, ram_bytes=1 << 20,
                                   out=tmp_path / f"fw-{width}-{machine}")
            runs = run_on_device(image, [s.tobytes() for s in x])
            ours = np.stack([np.frombuffer(r.output, np.int8) for r in runs])
            np.testing.assert_array_equal(ours, expected, err_msg=f"{machine} {width}")


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
def test_float_io_model_is_bit_exact_on_emulated_cortex_m4(float_tflites, tmp_path):
    tflite = float_tflites["conv"]
    info = generate(tflite, tmp_path)
    x = random_inputs(tflite, 20, seed=13, extremes=True)
    result = device_check(tmp_path, "qemu-mps2-an386", x, tflm_outputs(tflite, x), macs=info["macs"])
    assert result["qemu_bit_exact"] == len(x)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
def test_device_verify_sends_float_inputs_and_compares_float_outputs_bit_for_bit(float_tflites, tmp_path):
    import json
    import types

    from edgec.core.calibration import ArrayDataset
    from edgec.verify.device import verify_on_device

    tflite = float_tflites["conv"]
    info = generate(tflite, tmp_path)
    (tmp_path / "intermediate").mkdir()
    (tmp_path / "intermediate" / "model.tflite").write_bytes(tflite)
    (tmp_path / "report.json").write_text(json.dumps({"format": "c", "model": {"macs": info["macs"]}}))
    x = np.random.default_rng(0).normal(0, 2, (12, 5, 5, 2)).astype(np.float32)
    samples = ArrayDataset("test", {"input_1": ((5, 5, 2), "float32")}, {"input_1": x})
    profile = {"id": "test", "memory": {"flash_bytes": 1 << 20, "ram_bytes": 1 << 20}, "verification": {}}
    result = verify_on_device(tmp_path, profile, types.SimpleNamespace(reference=models.small_conv_model()),
                              samples, device="qemu-mps2-an386")
    assert result["bit_exact"] and result["samples"] == 12 and result["passed"], result
