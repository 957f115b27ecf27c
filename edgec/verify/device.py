"""``edgec verify OUT/ID --device qemu-... | --port PORT``: run a generated-C build on a device.

The firmware (edgec.device.firmware) is built from the folder's generated C, the held-out samples are
streamed over the framed serial protocol (QEMU's UART on a local socket, or a real board's port),
and every output must be bit-exact with the TFLite Micro interpreter running the same int8 model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgec.backends.c.export_c import reference_model
from edgec.core.errors import InputError
from edgec.device.firmware.cycles import cycle_fields, inference_cycles
from edgec.device.firmware.run import run_on_device, run_target_on_qemu
from edgec.device.firmware.samples import MAX_SAMPLES, sample_count, write_samples
from edgec.runtimes.base import dequantize_output, quantize_input
from edgec.runtimes.tflm import run_tflm, tflm_io_details
from edgec.verify.host import compare, gate, reference_outputs

STAGE = "verify"


def verify_on_device(folder: Path, profile: dict, loaded, evaluation, *, device: str | None = None,
                     port: str | None = None, portable: bool = False, timeout: float = 30.0,
                     retries: int = 3) -> dict:
    """Stream ``evaluation`` through the firmware; return the ``verify.json`` content."""
    report = json.loads((folder / "report.json").read_text())
    if report["format"] != "c":
        raise InputError(f"{folder} is a '{report['format']}' build; --device/--port run edgec's generated-C "
                         "firmware: compile with --backend c (for TFLite Micro, build harness main.cc with "
                         "your TFLite Micro tree)", stage=STAGE)
    limit = profile.get("verification", {}).get("max_samples")
    data = evaluation.subset(range(min(limit or len(evaluation), len(evaluation))))
    samples = data.arrays()
    quantized, expected, out_detail = reference_on_device(folder, samples)
    payloads = [q.tobytes() for q in quantized]
    firmware, link = None, {}
    if port:
        results = run_on_device(port, payloads, timeout=timeout, retries=retries, link=link)
    else:
        firmware, results = run_target_on_qemu(folder, profile, payloads, work=folder / "intermediate" / "firmware",
                                               device=device, cflags=("-DEDGEC_PORTABLE",) if portable else (),
                                               timeout=timeout, link=link)
    self_check = link.pop("self_check", None)
    # int8, or float32 for a model with float output: compared bit for bit either way.
    got = [np.frombuffer(r.output, out_detail["dtype"]).reshape(e.shape) for r, e in zip(results, expected)]
    mismatches = [i for i, (g, e) in enumerate(zip(got, expected)) if g.tobytes() != e.tobytes()]
    outputs = [np.concatenate([dequantize_output(g, out_detail) for g in got])]
    labels = None if evaluation.random else data.labels
    metrics = compare(reference_outputs(loaded.reference, samples), outputs, labels)
    counts = np.array([r.ticks for r in results], np.int64)
    macs = report.get("c_backend", {}).get("macs") or report["model"].get("macs")
    kernels = "portable C" if portable else "optimized (DSP/MVE where the core has it)"
    clock_mhz = profile.get("cpu", {}).get("clock_mhz")
    cycles = device_cycles(firmware, payloads[0], counts, port=port, macs=macs,
                           clock_hz=int(clock_mhz * 1_000_000) if clock_mhz else None)
    result = {"device": device or port, "runtime": f"edgec generated C firmware, {kernels} kernels", **metrics,
              "bit_exact": not mismatches, "mismatched_samples": mismatches[:20],
              "instructions_per_inference" if not port else "cycles_per_inference": {
                  "min": int(counts.min()), "p50": int(np.median(counts)), "max": int(counts.max())},
              "per_mac": round(float(np.median(counts)) / macs, 3) if macs else None, **cycles}
    # The bundled samples' check the firmware printed at boot (a --project build), when it was seen.
    result["self_check"] = self_check
    if port:
        result["link"] = link  # requests repeated after line faults, and reconnects
    if firmware is not None:
        result["firmware"] = {"board": firmware.board, "text": firmware.text, "data": firmware.data,
                              "bss": firmware.bss, "elf": str(firmware.elf.relative_to(folder))}
    failures = gate(result, profile.get("verification", {}))
    if self_check is not None and not self_check["passed"]:
        failures.append(f"the firmware's boot self-check printed '{self_check['line']}'")
    if mismatches:
        failures.insert(0, f"{len(mismatches)} of {len(got)} outputs differ from the TFLite Micro interpreter")
    return {**result, "failures": failures, "passed": not failures}


def reference_on_device(folder: Path, samples: dict[str, np.ndarray]):
    """The quantized inputs of ``samples`` (input name -> float batch) and TFLite Micro's raw outputs for
    them on the build's reference int8 model: ``(inputs, expected, output detail)``, one (1, ...) array
    per sample (int8, or float32 for a float-output model). What the firmware must reproduce."""
    # A c build keeps the int8 model its C came from; a tflm build ships the model TFLite Micro runs.
    reference = reference_model(folder)
    tflite = (reference if reference.is_file() else Path(folder) / "model.tflite").read_bytes()
    name = next(iter(samples))
    (in_detail, *_), (out_detail, *_) = tflm_io_details(tflite)
    quantized = [quantize_input(samples[name][n:n + 1], in_detail) for n in range(len(samples[name]))]
    expected = list(run_tflm(tflite, quantized)[0]) if quantized else []
    return quantized, expected, out_detail


def bundle_samples(folder: Path, profile: dict, evaluation, *, dest: Path | None = None) -> int:
    """Write ``edgec_samples.c/.h`` into ``dest`` (default: the build folder, next to the generated C):
    the first held-out samples of ``evaluation``, quantized, and TFLite Micro's outputs for them, as many
    as fit (:func:`edgec.device.firmware.samples.sample_count`). Returns how many were bundled."""
    data = evaluation.subset(range(min(MAX_SAMPLES, len(evaluation))))
    quantized, expected, _ = reference_on_device(folder, data.arrays())
    if not quantized:
        return 0
    n = sample_count(quantized[0].nbytes, expected[0].nbytes, profile.get("memory", {}).get("flash_bytes") or 0,
                     len(quantized))
    write_samples(dest or folder, [q.tobytes() for q in quantized[:n]], [e.tobytes() for e in expected[:n]])
    return n


def device_cycles(firmware, sample: bytes, counts: np.ndarray, *, port: str | None, macs: int | None,
                  clock_hz: int | None) -> dict:
    """``instructions_per_mac``, ``cycles_per_inference``, ``cycles_per_mac``, ``ms_at_clock`` and
    ``cycle_model``. On QEMU the cycles are estimated from the execution log of one more run of
    ``sample`` (:mod:`edgec.device.firmware.cycles`) and ``cycles_per_inference`` is that estimate; on a
    real board the counts are SysTick core cycles, so ``cycles_per_inference`` stays the measured
    min/p50/max and the per-MAC and millisecond figures come from its median."""
    median = float(np.median(counts))
    if port:
        fields = cycle_fields({"cycles": median, "instructions": None,
                               "cycle_model": {"name": "measured (SysTick core cycles)", "core": None}},
                              macs=macs, instructions=median, clock_hz=clock_hz)
        del fields["cycles_per_inference"]  # the measured min/p50/max, written by the caller
        fields["instructions_per_mac"] = None  # a board counts cycles, not instructions
        return fields
    estimate = inference_cycles(firmware.elf, firmware.board, sample)
    return cycle_fields(estimate, macs=macs, instructions=median, clock_hz=clock_hz)
