"""Run generated C on the host and compare it with the TFLite Micro interpreter.

Used by the tests, ``tools/cbackend_check.py`` and ``tools/bench_cbackend.py``: the portable
kernels are compiled with the system C compiler together with a tiny driver that streams
samples through ``edgec_invoke``; :func:`device_check` runs the same C in firmware on a QEMU board.
Samples travel as raw bytes of the model's input and output element types: int8, or float32 for
a model converted with float input or output (see :func:`io_dtypes`).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgec.core.errors import ToolchainError
from edgec.core.tflite_model import parse
from edgec.device.firmware.build import build_firmware
from edgec.device.firmware.cycles import cycle_fields, inference_cycles
from edgec.device.firmware.run import run_on_device
from edgec.runtimes.tflm import run_tflm, tflm_io_details

DRIVER = r"""
#include <stdio.h>
#include "model.h"
#ifndef EDGEC_INPUT_FLOAT /* model.h from before float I/O: int8 in and out */
typedef int8_t edgec_input_t;
typedef int8_t edgec_output_t;
#endif
/* Reads whole input tensors from stdin, writes each output tensor to stdout. */
int main(void) {
  static edgec_input_t in[EDGEC_INPUT_BYTES / sizeof(edgec_input_t)];
  static edgec_output_t out[EDGEC_OUTPUT_BYTES / sizeof(edgec_output_t)];
  while (fread(in, 1, sizeof in, stdin) == sizeof in) {
    if (edgec_invoke(in, out) != 0) return 2;
    fwrite(out, 1, sizeof out, stdout);
  }
  return 0;
}
"""


def compile_host(c_dir: Path, *, cc: str = "gcc", extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the generated C in ``c_dir`` with a stdin/stdout driver; returns the executable.

    The driver and the executable go in ``c_dir/host/``, so ``c_dir`` itself stays the clean
    model folder that the firmware build takes.
    """
    c_dir = Path(c_dir)
    build = c_dir / "host"
    build.mkdir(exist_ok=True)
    (build / "host_driver.c").write_text(DRIVER)
    exe = build / "host_model"
    sources = sorted(str(p) for p in c_dir.glob("*.c")) + [str(build / "host_driver.c")]
    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-DEDGEC_PORTABLE", *extra_flags,
           "-I", str(c_dir), *sources, "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolchainError(f"{cc} failed on the generated C: {result.stderr.strip()[:2000]}",
                             stage="export")
    return exe


def io_dtypes(c_dir: Path) -> tuple[np.dtype, np.dtype]:
    """Element types of the generated model's input and output: int8, or float32 when model.h
    says ``EDGEC_INPUT_FLOAT 1`` / ``EDGEC_OUTPUT_FLOAT 1`` (int8 when it predates those macros)."""
    header = Path(c_dir, "model.h")
    text = header.read_text() if header.is_file() else ""

    def dtype(kind: str) -> np.dtype:
        return np.dtype(np.float32 if re.search(rf"#define EDGEC_{kind}_FLOAT 1\b", text) else np.int8)

    return dtype("INPUT"), dtype("OUTPUT")


def run_host(exe: Path, inputs: np.ndarray) -> np.ndarray:
    """Run ``inputs`` (batch first) through the model compiled by :func:`compile_host`; returns
    the outputs flattened per sample. Both are int8, or float32 where the model's input or
    output is float (the types of the model.h beside the executable's ``host/`` folder)."""
    in_dtype, out_dtype = io_dtypes(Path(exe).parent.parent)
    inputs = np.ascontiguousarray(inputs, in_dtype)
    result = subprocess.run([str(exe)], input=inputs.tobytes(), capture_output=True)
    if result.returncode != 0:
        raise ToolchainError(f"host model exited with {result.returncode}", stage="verify")
    return np.frombuffer(result.stdout, out_dtype).reshape(len(inputs), -1)


def tflm_outputs(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the TFLite Micro Python interpreter for ``inputs`` (batch first, in the model's
    input type: int8, or float32 for a float-input model), flattened."""
    dtype = tflm_io_details(tflite_bytes)[0][0]["dtype"]
    y = run_tflm(tflite_bytes, [np.asarray(x, dtype) for x in inputs])[0]
    return y.reshape(len(y), -1)


def random_inputs(tflite_bytes: bytes, count: int, *, seed: int = 0, extremes: bool = False) -> np.ndarray:
    """``count`` uniformly random int8 input tensors (batch first) for the model's input shape.

    With ``extremes`` the first two (when there are two) are all -128 and all 127, the inputs
    most likely to saturate an accumulator or a requantization. A float32-input model gets
    float32 tensors from :func:`random_float_inputs` instead.
    """
    model = parse(tflite_bytes)
    if model.tensors[model.inputs[0]].type == "FLOAT32":
        return random_float_inputs(tflite_bytes, count, seed=seed, extremes=extremes)
    shape = model.tensors[model.inputs[0]].shape
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(count, *shape), dtype=np.int8)
    if extremes and count >= 2:
        x[0], x[1] = -128, 127
    return x


def input_quantization(tflite_bytes: bytes) -> tuple[np.float32, int]:
    """Scale and zero point that the model's float input is quantized with (its QUANTIZE's
    output); (1, 0) when no QUANTIZE reads the input."""
    model = parse(tflite_bytes)
    for op in model.operators:
        if op.name == "QUANTIZE" and op.inputs[0] == model.inputs[0]:
            t = model.tensors[op.outputs[0]]
            return np.float32(t.scales[0]), int(t.zero_points[0])
    return np.float32(1.0), 0


def exact_halves(scale: np.float32, ks: np.ndarray) -> np.ndarray:
    """Float32 values x with x / scale (float32 division) exactly k + 0.5, for those ``ks`` where
    such an x exists within two ulps of (k + 0.5) * scale: the rounding ties of QUANTIZE."""
    scale = np.float32(scale)
    target = np.asarray(ks, np.float64) + 0.5
    base = (target * np.float64(scale)).astype(np.float32)
    found = np.full(base.shape, np.nan, np.float32)
    for steps in (0, 1, -1, 2, -2):
        x = base
        for _ in range(abs(steps)):
            x = np.nextafter(x, np.float32(np.inf if steps > 0 else -np.inf))
        hit = np.isnan(found) & ((x / scale).astype(np.float64) == target)
        found[hit] = x[hit]
    return found[~np.isnan(found)]


def random_float_inputs(tflite_bytes: bytes, count: int, *, seed: int = 0,
                        extremes: bool = False) -> np.ndarray:
    """``count`` float32 input tensors for a float-input model, in thirds: uniform over a little
    more than the int8 range of the input quantization, exact rounding ties (x / scale = k + 0.5)
    on both sides of zero, and values up to 10^6 times the range, either sign. With ``extremes``
    the first two are all -2^30 and all 2^30 times the scale (the largest quotients the
    reference defines; see edgec_quantize_f32_s8)."""
    model = parse(tflite_bytes)
    shape = tuple(int(d) for d in model.tensors[model.inputs[0]].shape)
    scale, zero = input_quantization(tflite_bytes)
    rng = np.random.default_rng(seed)
    n = count * int(np.prod(shape, dtype=np.int64))
    near = rng.uniform(-160 - zero, 160 - zero, n) * scale
    ties = exact_halves(scale, np.arange(-140 - zero, 140 - zero))
    far = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(0, 6, n) * 128 * scale
    kind = rng.integers(0, 3, n)
    x = np.where(kind == 0, near, np.where(kind == 1, rng.choice(ties, n), far)).astype(np.float32)
    x = x.reshape(count, *shape)
    if extremes and count >= 2:
        x[0], x[1] = -(2.0 ** 30) * scale, (2.0 ** 30) * scale
    return x


def device_check(c_dir: Path, machine: str, inputs: np.ndarray, reference: np.ndarray, *, macs: int,
                 portable: bool = False, flash_bytes: int = 2 << 20, ram_bytes: int = 1 << 20,
                 cycles: bool = True, clock_hz: int | None = None) -> dict:
    """Build the generated C in ``c_dir`` as firmware for QEMU ``machine``, run ``inputs`` on it.

    ``reference`` holds the expected outputs (TFLite Micro's, flattened, one row per input; int8,
    or float32 for a float-output model, compared bit for bit).
    The DSP/MVE kernels are used unless ``portable`` (``-DEDGEC_PORTABLE``). The budgets are
    generous link limits: this measures the footprint, it does not gate it. Returns the number
    of bit-exact outputs, instructions per inference (median, min, max under ``-icount
    shift=0``) and per MAC, and the image's footprint from arm-none-eabi-size. With ``cycles``
    one input (the third, past the two extremes) runs again with QEMU's execution log for the
    estimated cycles of :mod:`edgec.device.firmware.cycles` (``cycles_per_inference``, ``cycles_per_mac``,
    ``ms_at_clock`` at ``clock_hz``, ``cycle_model``; None where the core has no model).
    """
    with tempfile.TemporaryDirectory() as work:
        image = build_firmware(c_dir, machine, flash_bytes=flash_bytes, ram_bytes=ram_bytes, out=Path(work),
                               cflags=("-DEDGEC_PORTABLE",) if portable else ())
        in_dtype, out_dtype = io_dtypes(c_dir)
        payloads = [np.ascontiguousarray(s, in_dtype).tobytes() for s in inputs]
        runs = run_on_device(image, payloads)
        estimate = inference_cycles(image.elf, machine, payloads[min(2, len(payloads) - 1)]) if cycles else None
    outs = np.stack([np.frombuffer(r.output, out_dtype) for r in runs])
    expected = np.ascontiguousarray(reference, out_dtype).reshape(outs.shape)
    counts = [r.ticks for r in runs]
    instructions = float(np.median(counts))
    return {"qemu_machine": machine, "kernels": "portable" if portable else "optimized",
            "qemu_bit_exact": int((outs.view(np.uint8) == expected.view(np.uint8)).all(axis=1).sum()),
            "instructions": int(instructions), "instructions_min": int(min(counts)),
            "instructions_max": int(max(counts)),
            **cycle_fields(estimate, macs=macs, instructions=instructions, clock_hz=clock_hz),
            "cycles_by_function": dict(list(estimate["functions"].items())[:8]) if estimate else None,
            "text_bytes": image.text, "data_bytes": image.data, "bss_bytes": image.bss,
            "stack_bytes": image.stack_bytes, "flash_bytes": image.flash_bytes, "ram_bytes": image.ram_bytes}
