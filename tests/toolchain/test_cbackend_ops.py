"""The generated C agrees byte for byte with TFLite Micro on every operator it supports.

Real toolchain: tf_keras models converted by the TFLite converter, C compiled by the system gcc,
reference outputs from the TFLite Micro Python interpreter.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from edgec.cbackend import OPS, generate
from edgec.cbackend.hostcheck import compile_host, random_inputs, run_host, tflm_outputs
from edgec.errors import InputError
from edgec.tflite_model import parse

import cbackend_support as models

pytestmark = pytest.mark.toolchain

REQUIRED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                "ADD", "MUL", "RESHAPE", "SOFTMAX", "QUANTIZE", "CONCATENATION", "PAD", "MEAN",
                "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6"}


@pytest.fixture(scope="module")
def tflites() -> dict[str, bytes]:
    return {"conv": models.to_int8_tflite(models.conv_model()),
            "merge": models.to_int8_tflite(models.merge_model())}


def _inputs(tflite: bytes, count: int) -> np.ndarray:
    x = random_inputs(tflite, count, seed=7)
    x[0], x[1] = -128, 127  # saturating extremes
    return x


@pytest.mark.parametrize("name", ["conv", "merge"])
def test_generated_c_is_bit_exact_with_tflite_micro(tflites, tmp_path, name):
    tflite = tflites[name]
    generate(tflite, tmp_path)
    x = _inputs(tflite, 300)
    ours = run_host(compile_host(tmp_path), x)
    np.testing.assert_array_equal(ours, tflm_outputs(tflite, x))


def test_test_models_cover_every_required_operator(tflites):
    used = {op.name for t in tflites.values() for op in parse(t).operators}
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
    from edgec.cbackend import ops
    from edgec.cbackend.plan import plan_memory

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


def test_float_output_model_is_refused_with_the_operator_named(tmp_path):
    tf = models.tensorflow()
    L = models.keras().layers
    models.seed_everything(4)
    inp = L.Input((4,))
    model = models.keras().Model(inp, L.Dense(3)(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.ones((1, 4), np.float32) * i] for i in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8  # output stays float32: a DEQUANTIZE ends the graph
    with pytest.raises(InputError, match=r"DEQUANTIZE.*tflm format"):
        generate(conv.convert(), tmp_path)


def test_not_a_tflite_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        generate(b"definitely not a model", tmp_path)


QEMU_MACHINES = ["qemu-mps2-an386", "qemu-mps3-an547"]  # Cortex-M4 (DSP) and Cortex-M55 (MVE)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)")
@pytest.mark.parametrize("machine", QEMU_MACHINES)
def test_optimized_kernels_are_bit_exact_on_emulated_cortex_m(tflites, tmp_path, machine):
    from edgec.firmware.build import build_firmware
    from edgec.firmware.run import run_on_device

    for name, tflite in tflites.items():
        generate(tflite, tmp_path / name)
        image = build_firmware(tmp_path / name, machine, flash_bytes=1 << 20, ram_bytes=1 << 20,
                               out=tmp_path / f"{name}-fw")
        x = _inputs(tflite, 20)
        runs = run_on_device(image, [s.tobytes() for s in x])
        ours = np.stack([np.frombuffer(r.output, np.int8) for r in runs])
        np.testing.assert_array_equal(ours, tflm_outputs(tflite, x), err_msg=f"{name} on {machine}")
