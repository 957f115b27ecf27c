"""Benchmark edgec's generated C on emulated Cortex-M boards against TFLite Micro; print a markdown table.

For each model, machine and kernel variant (optimized DSP/MVE, and portable C via -DEDGEC_PORTABLE)
the generated C is linked into edgec's firmware with arm-none-eabi-gcc and run under QEMU
(-icount shift=0) over the serial protocol. A row gives:

- flash (text+data) and RAM (data+bss, which includes the firmware's 8 KB stack reservation and the
  input/output buffers) from arm-none-eabi-size of the linked image, and the static arena alone;
- TFLite Micro's figures: the .tflite bytes and the arena measured in the TFLite Micro interpreter,
  and the RAM ratio = our static arena / TFLite Micro's arena (goal <= 0.8);
- instructions per inference (median over the inputs; the board timer counts instructions under
  -icount) and per multiply-accumulate (goal on the M4: <= 3 for keyword spotting);
- estimated core cycles per inference and per MAC, and milliseconds at the clock of the target
  profile named after the core (cortex-m4: 64 MHz, cortex-m7: 216 MHz): one input (the third) runs
  again with QEMU's execution log, costed by edgec.device.firmware.cycle_model (Cortex-M4 TRM timings;
  a conservative single-issue Cortex-M7 model; no model for M33/M55);
- how many of N seeded random int8 inputs (the first two all -128 and all 127) gave outputs
  byte-identical to the TFLite Micro interpreter's.

Models: the bundled digits example converted to int8 here (edgec.quantize with its calibration set),
MLPerf Tiny's own int8 references from ../shared/models/mlperf-tiny/, and MLPerf Tiny's visual
wake words MobileNetV1 and anomaly-detection autoencoder built in code with seeded weights
(tools/mlperf_tiny_models.py). MACs are counted from each model by the C backend.

    .venv/bin/python tools/bench_cbackend.py [--models digits kws resnet8 wakeword vww ad]
        [--machines qemu-mps2-an386 qemu-mps3-an547] [--all-machines] [-n 20] [--seed 0]
        [--jobs 1] [--json FILE]

Exit status 1 when any output differs from TFLite Micro's, 2 for bad arguments or a missing model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# EDGEC_MLPERF_MODELS names the folder when it is not beside the repository (a git worktree), as for the tests
from tools.corpus.sources import DIGITS_CALIBRATION, DIGITS_MODEL, MLPERF  # noqa: E402

# name -> (table label, MLPerf .tflite file or None for the digits example converted here)
MODELS = {
    "digits": ("digits CNN (edgec int8)", None),
    "kws": ("MLPerf KWS DS-CNN", "kws_ref_model.tflite"),
    "resnet8": ("MLPerf ResNet-8", "pretrainedResnet_quant.tflite"),
    "wakeword": ("MLPerf wake word", "str_ww_ref_model.tflite"),
    # built in code with seeded weights (tools/mlperf_tiny_models.py): the trained files are not here
    "vww": ("MLPerf VWW MobileNetV1 0.25 (seeded)", "code"),
    "ad": ("MLPerf AD autoencoder (seeded)", "code"),
}
DEFAULT_MACHINES = ("qemu-mps2-an386", "qemu-mps3-an547")
MORE_MACHINES = ("qemu-mps2-an500", "qemu-mps2-an505")
VARIANTS = (("optimized", False), ("portable", True))
RAM_RATIO_GOAL = 0.8
KWS_M4_INSTRUCTIONS_PER_MAC_GOAL = 3.0
log = logging.getLogger("bench_cbackend")


def digits_int8_tflite() -> bytes:
    """The bundled digits example, full-integer int8 with int8 I/O, calibrated on its calibration set."""
    from edgec.core.calibration_load import open_dataset
    from edgec.frontend.load import load
    from edgec.quantize.converter import int8_tflite
    from edgec.core.tf import seed_everything

    seed_everything(0)
    loaded = load(DIGITS_MODEL)
    return int8_tflite(loaded.keras_model, open_dataset(DIGITS_CALIBRATION, loaded.inputs))


def model_tflite(name: str) -> bytes:
    """The int8 .tflite bytes of benchmark model ``name``; InputError when an MLPerf file is missing."""
    from edgec.core.errors import InputError

    file = MODELS[name][1]
    if file is None:
        return digits_int8_tflite()
    if file == "code":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from mlperf_tiny_models import int8_tflite

        return int8_tflite(name)
    if not (MLPERF / file).is_file():
        raise InputError(f"{MLPERF / file} not found: the MLPerf Tiny models belong beside the repository "
                         "(../shared/models/mlperf-tiny); leave this model out with --models", stage="bench")
    return (MLPERF / file).read_bytes()


def model_figures(name: str, tflite: bytes, info: dict, inputs, reference, tflm_arena: int) -> dict:
    """The per-model columns: MACs, our static arena, TFLite Micro's .tflite bytes and its measured
    arena ``tflm_arena``."""
    # TFLite Micro keeps the input and output tensors in its arena; ours live in the caller's buffers.
    io_bytes = int(inputs[0].size + reference.shape[1])
    return {"model": name, "label": MODELS[name][0], "macs": info["macs"], "ops": len(info["ops"]),
            "arena_bytes": info["arena_bytes"], "weight_bytes": info["weight_bytes"], "io_bytes": io_bytes,
            "tflite_bytes": len(tflite), "tflm_arena_bytes": tflm_arena, "inputs": len(inputs),
            "ram_ratio": round(info["arena_bytes"] / tflm_arena, 3),
            "ram_ratio_with_io": round((info["arena_bytes"] + io_bytes) / tflm_arena, 3)}


def bench_model(name: str, tflite: bytes, machines: list[str], *, count: int, seed: int, jobs: int) -> list[dict]:
    """Generate the C per machine, then build and run it on every machine and kernel variant; one row each."""
    from edgec.backends.c import generate
    from edgec.backends.c.hostcheck import device_check, random_inputs, tflm_outputs
    from edgec.device.firmware.boards import board
    from edgec.runtimes.tflm_arena import measure_arena

    with tempfile.TemporaryDirectory() as tmp:
        # The C is generated per machine: the layout of the weights depends on the core
        # (edgec.backends.c.codegen.wide_conv_fits) and on the flash budget of its profile.
        infos = {m: generate(tflite, Path(tmp) / m, flash_bytes=flash_budget([m]), core=board(m).core)
                 for m in machines}
        x = random_inputs(tflite, count, seed=seed, extremes=True)
        reference = tflm_outputs(tflite, x)
        tflm_arena = measure_arena(tflite)["arena_bytes"]
        common = {m: model_figures(name, tflite, info, x, reference, tflm_arena) for m, info in infos.items()}
        runs = [(m, v, portable) for m in machines for v, portable in VARIANTS]

        def one(run):
            machine, variant, portable = run
            info = infos[machine]
            t0 = time.perf_counter()
            result = device_check(Path(tmp) / machine, machine, x, reference, macs=info["macs"],
                                  portable=portable, clock_hz=clock_hz(machine))
            log.info("%s on %s (%s): %.1f s", name, machine, variant, time.perf_counter() - t0)
            return {**common[machine], **result, "int16_weights": info["int16_weights"]}

        # Each run is its own gcc and QEMU process: threads only wait on them.
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, runs))


def flash_budget(machines: list[str]) -> int | None:
    """The smallest model flash budget of the target profiles named after the boards' cores (the
    generator's layout choices depend on it, see edgec.backends.c.codegen.wide_fc_fits)."""
    from edgec.core.errors import EdgecError
    from edgec.device.firmware.boards import board
    from edgec.core.targets import model_budget, resolve

    budgets = []
    for machine in machines:
        try:
            budgets.append(model_budget(resolve(board(machine).core))[0])
        except EdgecError:
            return None
    return None if not budgets or None in budgets else min(budgets)


def clock_hz(machine: str) -> int | None:
    """The clock of the target profile named after the board's core (targets/cortex-m4.toml: 64 MHz)."""
    from edgec.core.errors import EdgecError
    from edgec.device.firmware.boards import board
    from edgec.core.targets import resolve

    try:
        return int(resolve(board(machine).core)["cpu"]["clock_mhz"] * 1_000_000)
    except (EdgecError, KeyError):
        return None


def _machine_label(machine: str) -> str:
    from edgec.device.firmware.boards import board

    b = board(machine)
    return f"{b.machine} ({b.core.replace('cortex-', '').upper()})"


def table(rows: list[dict]) -> str:
    """The markdown table of ``rows`` (one per model, machine and kernel variant)."""
    head = ["model", "MACs", "machine", "kernels", "flash B (text+data)", "RAM B (data+bss)", "static arena B",
            "TFLM .tflite B", "TFLM arena B", "RAM ratio", "instructions / inference", "instructions / MAC",
            "est. cycles / inference", "est. cycles / MAC", "ms at target clock", "bit-exact vs TFLM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["label"], r["macs"], _machine_label(r["qemu_machine"]), r["kernels"], r["flash_bytes"],
                 r["ram_bytes"], r["arena_bytes"], r["tflite_bytes"], r["tflm_arena_bytes"],
                 f"{r['ram_ratio']:.3f}", r["instructions"], f"{r['instructions_per_mac']:.2f}",
                 _or_dash(r["cycles_per_inference"]), _or_dash(r["cycles_per_mac"], "{:.2f}"),
                 _or_dash(r["ms_at_clock"], "{:.2f}")
                 + (f" @ {r['cycle_model']['clock_hz'] / 1e6:g} MHz" if r["cycle_model"] else ""),
                 f"{r['qemu_bit_exact']}/{r['inputs']}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _or_dash(value, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


# Issue 16: 0.9x the best published Cortex-M4 cycles per MAC (MLPerf Tiny v1.1 Plumerai, v1.2 X-CUBE-AI).
M4_CYCLES_PER_MAC_GOAL = {"kws": 1.75, "resnet8": 1.42, "ad": 1.65}


def cycles_table(rows: list[dict]) -> str:
    """Estimated cycles per MAC of the optimized kernels, one row per model, one column per core."""
    cores = sorted({r["cycle_model"]["core"] for r in rows if r["cycle_model"]})
    head = ["model", "MACs", *[f"{c} cycles/MAC" for c in cores], "M4 goal (issue 16)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name in dict.fromkeys(r["model"] for r in rows):
        got = {r["cycle_model"]["core"]: r for r in rows if r["model"] == name and r["cycle_model"]
               and r["kernels"] == "optimized"}
        if not got:
            continue
        first = next(iter(got.values()))
        cells = [first["label"], first["macs"], *[_or_dash(got[c]["cycles_per_mac"], "{:.2f}") if c in got else "-"
                                                  for c in cores], M4_CYCLES_PER_MAC_GOAL.get(name, "-")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def goals(rows: list[dict]) -> list[str]:
    """One line per goal of issue 4, stating the measured values (met or not)."""
    worst = max(rows, key=lambda r: r["ram_ratio"])
    worst_io = max(rows, key=lambda r: r["ram_ratio_with_io"])
    met = "met" if worst["ram_ratio"] <= RAM_RATIO_GOAL else "NOT met"
    lines = [(f"- RAM ratio <= {RAM_RATIO_GOAL}: {met} (worst {worst['ram_ratio']:.3f}, {worst['label']}; "
              f"counting the input and output buffers, which TFLite Micro keeps in its arena, worst "
              f"{worst_io['ram_ratio_with_io']:.3f}, {worst_io['label']})")]
    kws_m4 = {r["kernels"]: r["instructions_per_mac"] for r in rows
              if r["model"] == "kws" and "an386" in r["qemu_machine"]}
    if "optimized" in kws_m4:
        ok = kws_m4["optimized"] <= KWS_M4_INSTRUCTIONS_PER_MAC_GOAL
        portable = f"; portable kernels {kws_m4['portable']:.2f}" if "portable" in kws_m4 else ""
        lines.append(f"- KWS on the M4, optimized kernels: {kws_m4['optimized']:.2f} instructions/MAC "
                     f"(goal <= {KWS_M4_INSTRUCTIONS_PER_MAC_GOAL:g}: {'met' if ok else 'NOT met'}{portable})")
    for r in rows:
        goal = M4_CYCLES_PER_MAC_GOAL.get(r["model"])
        if goal and r["kernels"] == "optimized" and r["cycle_model"] and r["cycle_model"]["core"] == "cortex-m4":
            ok = r["cycles_per_mac"] <= goal
            lines.append(f"- {r['label']} on the M4: {r['cycles_per_mac']:.2f} estimated cycles/MAC "
                         f"(goal <= {goal}: {'met' if ok else 'NOT met'})")
    exact = sum(r["qemu_bit_exact"] for r in rows)
    total = sum(r["inputs"] for r in rows)
    inexact = sum(r["qemu_bit_exact"] != r["inputs"] for r in rows)
    lines.append(f"- bit-exact with the TFLite Micro interpreter: {exact}/{total} outputs"
                 + (f"; MISMATCHES in {inexact} row(s)" if inexact else ""))
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--machines", nargs="+", default=list(DEFAULT_MACHINES),
                        help="QEMU boards (default: %(default)s)")
    parser.add_argument("--all-machines", action="store_true",
                        help=f"also {' and '.join(MORE_MACHINES)} (Cortex-M7, Cortex-M33)")
    parser.add_argument("-n", "--inputs", type=int, default=20, help="random int8 inputs per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="machine/variant runs in parallel per model")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.inputs < 1:
        parser.error("-n must be at least 1")
    if args.all_machines:
        args.machines += [m for m in MORE_MACHINES if m not in args.machines]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the goals; 1 if any output differed from TFLite Micro."""
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    from edgec.core.errors import EdgecError
    from edgec.device.firmware.boards import board

    t0 = time.perf_counter()
    rows = []
    try:
        for m in args.machines:
            board(m)  # an unknown board is a one-line error before any work
        for name in args.models:
            rows += bench_model(name, model_tflite(name), args.machines, count=args.inputs, seed=args.seed,
                                jobs=args.jobs)
    except (OSError, EdgecError) as e:
        print(f"bench_cbackend: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    stack = rows[0]["stack_bytes"] if rows else 0
    print(f"Generated C vs TFLite Micro on QEMU ({args.inputs} seeded random int8 inputs per row, seed {args.seed}; "
          f"RAM includes the {stack} B stack reservation and the I/O buffers):\n")
    print(table(rows))
    print()
    print(f"Estimated cycles per MAC (edgec.device.firmware.cycle_model), optimized kernels:\n\n{cycles_table(rows)}\n")
    print("\n".join(goals(rows)))
    if args.json:
        args.json.write_text(json.dumps({"inputs": args.inputs, "seed": args.seed, "rows": rows}, indent=1) + "\n")
    log.info("done in %.0f s", time.perf_counter() - t0)
    return 0 if all(r["qemu_bit_exact"] == r["inputs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
