"""The held-out samples a firmware checks itself with at boot: ``edgec_samples.c/.h``.

A ``--project`` build bundles a few quantized held-out inputs and the outputs TFLite Micro gives for
them (the bit-exact reference) next to the generated model, as const arrays (flash, not RAM: the
micro:bit has 16 KB of RAM). The firmware's ``edgec_self_check()`` (src/main.c) runs them at boot and
prints one line on the UART, ``edgec self-check: 4/4 bit-exact`` (or ``3/4 bit-exact (first
mismatch: sample 2)``), before serving the protocol; the host skips text before a frame's magic and
keeps the line (:meth:`edgec.device.firmware.protocol.Device.self_check`).
"""

from __future__ import annotations

import re
from pathlib import Path

SAMPLES_C = "edgec_samples.c"
SAMPLES_H = "edgec_samples.h"
MAX_SAMPLES = 4
# The bundled samples take at most this share of the flash budget (inputs and outputs together).
FLASH_SHARE = 16
SELF_CHECK = re.compile(rb"edgec self-check: (\d+)/(\d+) bit-exact[^\r\n]*")


def sample_count(input_bytes: int, output_bytes: int, flash_bytes: int, available: int) -> int:
    """How many samples to bundle: up to MAX_SAMPLES, within 1/FLASH_SHARE of the flash budget."""
    fits = (flash_bytes // FLASH_SHARE) // max(1, input_bytes + output_bytes)
    return max(0, min(MAX_SAMPLES, available, fits))


def _rows(rows: list[bytes]) -> str:
    lines = []
    for row in rows:
        hexes = [f"0x{b:02x}" for b in row]
        body = ",\n".join("        " + ", ".join(hexes[i:i + 16]) for i in range(0, len(hexes), 16))
        lines.append("    {\n" + body + "\n    }")
    return ",\n".join(lines)


def write_samples(folder: Path, inputs: list[bytes], outputs: list[bytes]) -> list[Path]:
    """Write ``edgec_samples.c/.h`` (the input and expected output bytes of each sample) into ``folder``.

    Returns the two paths; writes nothing (and returns []) for no samples.
    """
    if not inputs:
        return []
    if len(inputs) != len(outputs) or len({len(i) for i in inputs}) != 1 or len({len(o) for o in outputs}) != 1:
        raise ValueError("write_samples: one input and one output per sample, all of one size")  # a caller's bug
    n, nin, nout = len(inputs), len(inputs[0]), len(outputs[0])
    folder = Path(folder)
    header = folder / SAMPLES_H
    header.write_text(
        "/* Held-out samples for the firmware's boot self-check, written by edgec: quantized inputs and the\n"
        " * outputs TFLite Micro gives for them (the bit-exact reference). const: they stay in flash. */\n"
        "#ifndef EDGEC_SAMPLES_H\n#define EDGEC_SAMPLES_H\n#include <stdint.h>\n"
        f"#define EDGEC_SAMPLE_COUNT {n}u\n#define EDGEC_SAMPLE_INPUT_BYTES {nin}u\n"
        f"#define EDGEC_SAMPLE_OUTPUT_BYTES {nout}u\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
        f"extern const uint8_t edgec_sample_inputs[{n}][{nin}];\n"
        f"extern const uint8_t edgec_sample_outputs[{n}][{nout}];\n"
        "#ifdef __cplusplus\n}\n#endif\n#endif\n")
    source = folder / SAMPLES_C
    source.write_text(
        f'#include "{SAMPLES_H}"\n\n'
        f"const uint8_t edgec_sample_inputs[{n}][{nin}] = {{\n{_rows(inputs)}\n}};\n\n"
        f"const uint8_t edgec_sample_outputs[{n}][{nout}] = {{\n{_rows(outputs)}\n}};\n")
    return [source, header]


def parse_self_check(text: bytes) -> dict | None:
    """The firmware's self-check line in ``text`` (bytes the device sent outside frames), or None:
    ``{"line": ..., "exact": k, "samples": n, "passed": k == n}``."""
    m = SELF_CHECK.search(text)
    if m is None:
        return None
    exact, total = int(m.group(1)), int(m.group(2))
    return {"line": m.group(0).decode("ascii", "replace"), "exact": exact, "samples": total,
            "passed": exact == total}
