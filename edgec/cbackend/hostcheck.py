"""Run generated C on the host and compare it with the TFLite Micro interpreter.

Used by the tests, ``tools/cbackend_check.py`` and ``tools/bench_cbackend.py``: the portable
kernels are compiled with the system C compiler together with a tiny driver that streams int8
samples through ``edgec_invoke``; :func:`device_check` runs the same C in firmware on a QEMU board.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ToolchainError

DRIVER = r"""
#include <stdio.h>
#include "model.h"
/* Reads whole input tensors from stdin, writes each output tensor to stdout. */
int main(void) {
  static int8_t in[EDGEC_INPUT_BYTES], out[EDGEC_OUTPUT_BYTES];
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


def run_host(exe: Path, inputs: np.ndarray) -> np.ndarray:
    """Run int8 ``inputs`` (batch first) through the compiled model; returns int8 outputs."""
    inputs = np.ascontiguousarray(inputs, np.int8)
    result = subprocess.run([str(exe)], input=inputs.tobytes(), capture_output=True)
    if result.returncode != 0:
        raise ToolchainError(f"host model exited with {result.returncode}", stage="verify")
    return np.frombuffer(result.stdout, np.int8).reshape(len(inputs), -1)


def tflm_outputs(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the TFLite Micro Python interpreter for int8 ``inputs`` (batch first), flattened."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite_bytes)
    shape = interp.get_input_details(0)["shape"]
    outs = []
    for x in inputs:
        interp.set_input(np.asarray(x, np.int8).reshape(shape), 0)
        interp.invoke()
        outs.append(np.asarray(interp.get_output(0)).reshape(-1).copy())
    return np.stack(outs)


def tflm_arena_bytes(tflite_bytes: bytes) -> int:
    """Arena bytes TFLite Micro's recording allocator reports for the model."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite_bytes)
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    match = re.search(r"Arena allocation total (\d+) bytes", text)
    if not match:
        raise ToolchainError("TFLite Micro printed no arena total", stage="verify")
    return int(match.group(1))


def random_inputs(tflite_bytes: bytes, count: int, *, seed: int = 0, extremes: bool = False) -> np.ndarray:
    """``count`` uniformly random int8 input tensors (batch first) for the model's input shape.

    With ``extremes`` the first two (when there are two) are all -128 and all 127, the inputs
    most likely to saturate an accumulator or a requantization.
    """
    from ..tflite_model import parse

    model = parse(tflite_bytes)
    shape = model.tensors[model.inputs[0]].shape
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(count, *shape), dtype=np.int8)
    if extremes and count >= 2:
        x[0], x[1] = -128, 127
    return x


def device_check(c_dir: Path, machine: str, inputs: np.ndarray, reference: np.ndarray, *, macs: int,
                 portable: bool = False, flash_bytes: int = 2 << 20, ram_bytes: int = 1 << 20) -> dict:
    """Build the generated C in ``c_dir`` as firmware for QEMU ``machine``, run ``inputs`` on it.

    ``reference`` holds the expected int8 outputs (TFLite Micro's, flattened, one row per input).
    The DSP/MVE kernels are used unless ``portable`` (``-DEDGEC_PORTABLE``). The budgets are
    generous link limits: this measures the footprint, it does not gate it. Returns the number
    of bit-exact outputs, instructions per inference (median, min, max under ``-icount
    shift=0``) and per MAC, and the image's footprint from arm-none-eabi-size.
    """
    from ..firmware.build import build_firmware
    from ..firmware.run import run_on_device

    with tempfile.TemporaryDirectory() as work:
        image = build_firmware(c_dir, machine, flash_bytes=flash_bytes, ram_bytes=ram_bytes, out=Path(work),
                               cflags=("-DEDGEC_PORTABLE",) if portable else ())
        runs = run_on_device(image, [np.ascontiguousarray(s, np.int8).tobytes() for s in inputs])
    outs = np.stack([np.frombuffer(r.output, np.int8) for r in runs])
    counts = [r.ticks for r in runs]
    instructions = float(np.median(counts))
    return {"qemu_machine": machine, "kernels": "portable" if portable else "optimized",
            "qemu_bit_exact": int((outs == reference).all(axis=1).sum()),
            "instructions": int(instructions), "instructions_min": int(min(counts)),
            "instructions_max": int(max(counts)), "instructions_per_mac": round(instructions / macs, 2),
            "text_bytes": image.text, "data_bytes": image.data, "bss_bytes": image.bss,
            "stack_bytes": image.stack_bytes, "flash_bytes": image.flash_bytes, "ram_bytes": image.ram_bytes}
