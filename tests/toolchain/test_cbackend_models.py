"""Generated C on real models: the digits example and MLPerf Tiny's int8 reference models.

Host-compiled portable C versus the TFLite Micro interpreter (byte-identical outputs), and the
Cortex-M DSP / M55 MVE variants cross-compiled with arm-none-eabi-gcc (they run on QEMU in the
firmware tests).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, MLPERF, needs_mlperf

from edgec.backends.c import generate
from edgec.backends.c.hostcheck import compile_host, random_inputs, run_host, tflm_outputs
from edgec.runtimes.tflm_arena import measure_arena

import cbackend_support as support

pytestmark = pytest.mark.toolchain

MLPERF_MODELS = ["kws_ref_model", "pretrainedResnet_quant", "str_ww_ref_model"]
ARM_GCC = shutil.which("arm-none-eabi-gcc")
CPUS = {  # flags, and an instruction that proves the optimized kernel was compiled in
    "cortex-m4": (["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], "smlad"),
    "cortex-m7": (["-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"], "smlad"),
    "cortex-m33": (["-mcpu=cortex-m33", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"], "smlad"),
    "cortex-m55": (["-mcpu=cortex-m55", "-mfloat-abi=hard"], "vmlava"),  # objdump spells VMLADAVA as vmlava
}


@pytest.fixture(scope="module")
def digits_tflite() -> bytes:
    return support.digits_int8_tflite(DIGITS_MODEL, DIGITS_CALIBRATION)


def test_digits_is_bit_exact_on_every_held_out_sample(digits_tflite, tmp_path):
    generate(digits_tflite, tmp_path)
    x = support.quantize_input(digits_tflite, np.load(DIGITS_EVAL)["image"].astype(np.float32))
    assert len(x) == 500
    ours = run_host(compile_host(tmp_path), x)
    np.testing.assert_array_equal(ours, tflm_outputs(digits_tflite, x))


def test_static_arena_is_smaller_than_tflite_micro_arena(digits_tflite, tmp_path):
    info = generate(digits_tflite, tmp_path)
    assert info["arena_bytes"] <= 0.8 * measure_arena(digits_tflite)["arena_bytes"]


@needs_mlperf  # the folder may be absent; a model missing from it (renamed?) is an error, not a skip
@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_tiny_int8_model_is_bit_exact(name, tmp_path):
    tflite = (MLPERF / f"{name}.tflite").read_bytes()
    generate(tflite, tmp_path)
    x = random_inputs(tflite, 100, seed=11)
    ours = run_host(compile_host(tmp_path), x)
    np.testing.assert_array_equal(ours, tflm_outputs(tflite, x))


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc not installed (make toolchains)")
@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_optimized_kernels_cross_compile_for_cortex_m(digits_tflite, tmp_path, cpu):
    flags, instruction = CPUS[cpu]
    generate(digits_tflite, tmp_path)
    objects = []
    for source in sorted(tmp_path.glob("*.c")):
        obj = tmp_path / (source.stem + ".o")
        subprocess.run([ARM_GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-mthumb", *flags,
                        "-c", str(source), "-o", str(obj)], check=True)
        objects.append(str(obj))
    dump = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", *objects],
                          capture_output=True, text=True, check=True).stdout
    assert instruction in dump


def test_c_format_exporter_and_host_runtime_agree_with_tflite_micro(digits_tflite, tmp_path):
    from edgec.core.build_state import Build
    from edgec.backends.c.export_c import export, predict
    from edgec.runtimes.tflm import predict_tflm
    from edgec.core.targets import resolve
    from edgec.quantize.spec import QuantSpec

    out = tmp_path / "cortex-m4"
    (out / "intermediate").mkdir(parents=True)
    target = resolve("cortex-m4")
    build = Build(target=target, keras_model=None, calibration=None, evaluation=None, out=out,
                  work=out / "intermediate", settings={}, quant=QuantSpec.from_settings({}, target), report={},
                  int8_tflite=digits_tflite)
    export(build)
    assert (out / "model.c").is_file() and build.artifact == out / "model.h"
    memory = build.report["memory"]
    assert memory["arena_bytes"] < memory["tflm_arena_bytes"]
    assert build.report["c_backend"]["macs"] > 0 and "CONV_2D" in build.report["operators"]
    images = {"image": np.load(DIGITS_EVAL)["image"][:64].astype(np.float32)}
    ours = predict(build.artifact, images)[0]
    np.testing.assert_array_equal(ours, predict_tflm(build.work / "model.tflite", images)[0])
    assert not (out / "host").exists()  # verification builds elsewhere: the folder ships as is
