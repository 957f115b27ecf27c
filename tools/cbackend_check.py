"""Check edgec's C backend on one int8 .tflite: bit-exactness against TFLite Micro and RAM.

Generates the C, compiles the portable kernels for this host, runs N random int8 inputs (plus the
all -128 / all 127 extremes) through it and through the TFLite Micro interpreter, and reports how
many outputs are byte-identical, the static arena against TFLite Micro's measured arena, the weight
bytes and the MAC count. Exit status 1 when any output differs.

    .venv/bin/python tools/cbackend_check.py MODEL.tflite [-n 100] [--seed 0] [--keep DIR] [--json]
        [--qemu qemu-mps2-an386 [--portable]]

With --qemu the same inputs also run on the emulated board (edgec.device.firmware: arm-none-eabi-gcc,
QEMU, the serial protocol), with the DSP/MVE kernels unless --portable, and the report adds the
device's bit-exactness and instructions per inference and per MAC.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def check(tflite: bytes, *, count: int, seed: int, out_dir: Path, qemu: str | None = None,
          portable: bool = False) -> dict:
    """Generate, host-compile and compare; returns the measured numbers."""
    from edgec.backends.c import generate
    from edgec.backends.c.hostcheck import compile_host, device_check, random_inputs, run_host, tflm_outputs
    from edgec.runtimes.tflm_arena import measure_arena

    info = generate(tflite, out_dir)
    exe = compile_host(out_dir)
    x = random_inputs(tflite, count, seed=seed, extremes=True)
    t0 = time.perf_counter()
    ours = run_host(exe, x)
    host_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = tflm_outputs(tflite, x)
    tflm_s = time.perf_counter() - t0
    same = (ours == ref).all(axis=1)
    tflm_arena = measure_arena(tflite)["arena_bytes"]
    result = {"inputs": int(count), "bit_exact": int(same.sum()),
            "max_abs_diff": int(np.abs(ours.astype(np.int32) - ref).max()) if count else 0,
            "arena_bytes": info["arena_bytes"], "tflm_arena_bytes": tflm_arena,
            "arena_ratio": round(info["arena_bytes"] / tflm_arena, 3),
            "weight_bytes": info["weight_bytes"], "tflite_bytes": len(tflite), "macs": info["macs"],
            "ops": len(info["ops"]), "host_c_seconds": round(host_s, 3),
            "tflm_python_seconds": round(tflm_s, 3)}
    if qemu:
        result.update(device_check(out_dir, qemu, x, ref, macs=info["macs"], portable=portable))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("-n", "--inputs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the generated C here instead of a temp dir")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--qemu", metavar="MACHINE", help="also run on this emulated board")
    parser.add_argument("--portable", action="store_true", help="with --qemu: portable C kernels")
    args = parser.parse_args(argv)
    from edgec.core.errors import EdgecError

    try:
        tflite = args.model.read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            result = check(tflite, count=args.inputs, seed=args.seed, out_dir=args.keep or Path(tmp),
                           qemu=args.qemu, portable=args.portable)
    except (OSError, EdgecError) as e:
        print(f"cbackend_check: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    if args.json:
        print(json.dumps({"model": str(args.model), **result}))
    else:
        print(f"{args.model.name}: bit-exact {result['bit_exact']}/{result['inputs']} "
              f"(max |diff| {result['max_abs_diff']}), arena {result['arena_bytes']} B vs TFLM "
              f"{result['tflm_arena_bytes']} B ({result['arena_ratio']}x), weights "
              f"{result['weight_bytes']} B, {result['macs']} MACs, {result['ops']} ops")
        if args.qemu:
            print(f"  {args.qemu} ({result['kernels']} kernels): bit-exact {result['qemu_bit_exact']}/"
                  f"{result['inputs']}, {result['instructions']} instructions per inference "
                  f"({result['instructions_per_mac']} per MAC), text {result['text_bytes']} B, "
                  f"bss {result['bss_bytes']} B")
    exact = result["bit_exact"] == result["inputs"]
    if args.qemu:
        exact = exact and result["qemu_bit_exact"] == result["inputs"]
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
