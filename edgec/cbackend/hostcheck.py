"""Run generated C on the host and compare it with the TFLite Micro interpreter.

Used by the tests and ``tools/cbackend_check.py``: the portable kernels are compiled with the
system C compiler together with a tiny driver that streams int8 samples through ``edgec_invoke``.
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


def random_inputs(tflite_bytes: bytes, count: int, *, seed: int = 0) -> np.ndarray:
    """``count`` uniformly random int8 input tensors (batch first) for the model's input shape."""
    from ..tflite_model import parse

    model = parse(tflite_bytes)
    shape = model.tensors[model.inputs[0]].shape
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count, *shape), dtype=np.int8)
