"""A hand-written int8 model in C for the firmware tests, and its numpy reference.

It stands in for the C backend's output (same contract: model.c/model.h, EDGEC_*_BYTES macros,
``int edgec_invoke(const int8_t *input, int8_t *output)``) so that the firmware, the protocol
and QEMU are tested on their own. It is a test fixture, not a model generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IN, OUT = 48, 10
IN_ZP, OUT_ZP = -3, 5
MULT, SHIFT = 1_518_500_250, 40  # out = round(acc * MULT / 2**SHIFT): acc * ~0.0014


def _params(seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, size=(OUT, IN), dtype=np.int64)
    b = rng.integers(-4000, 4000, size=OUT, dtype=np.int64)
    return w, b


def reference(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """What the C model computes for int8 input ``x`` (shape (IN,)), in int64 numpy arithmetic."""
    w, b = _params(seed)
    acc = b + w @ (x.astype(np.int64) - IN_ZP)
    v = ((acc * MULT + (1 << (SHIFT - 1))) >> SHIFT) + OUT_ZP
    return np.clip(v, -128, 127).astype(np.int8)


def _c_array(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in np.ravel(values)) + "}"


def write_fc_model(folder: Path, *, seed: int = 0, extra_c: str = "", extra_use: str = "") -> Path:
    """Write model.c/model.h of one int8 fully-connected layer into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    w, b = _params(seed)
    (folder / "model.h").write_text(
        "#ifndef MODEL_H\n#define MODEL_H\n#include <stdint.h>\n"
        f"#define EDGEC_INPUT_BYTES {IN}\n#define EDGEC_OUTPUT_BYTES {OUT}\n#define EDGEC_ARENA_BYTES {4 * OUT}\n"
        "int edgec_invoke(const int8_t *input, int8_t *output);\n#endif\n")
    (folder / "model.c").write_text(
        '#include "model.h"\n'
        f"static const int8_t weights[{OUT}][{IN}] = {_c_array(w)};\n"
        f"static const int32_t bias[{OUT}] = {_c_array(b)};\n"
        f"static int32_t arena[{OUT}];\n{extra_c}\n"
        "int edgec_invoke(const int8_t *input, int8_t *output)\n{\n"
        f"    for (int o = 0; o < {OUT}; o++) {{\n"
        "        int32_t acc = bias[o];\n"
        f"        for (int i = 0; i < {IN}; i++) acc += (input[i] - ({IN_ZP})) * weights[o][i];\n"
        "        arena[o] = acc;\n    }\n"
        f"    for (int o = 0; o < {OUT}; o++) {{\n"
        f"        int64_t v = (((int64_t)arena[o] * {MULT}LL + (1LL << {SHIFT - 1})) >> {SHIFT}) + {OUT_ZP};\n"
        "        output[o] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));\n    }\n"
        f"    {extra_use}\n    return 0;\n}}\n")
    return folder


def random_inputs(n: int, seed: int = 1) -> list[np.ndarray]:
    """``n`` random int8 input vectors."""
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=IN, dtype=np.int64).astype(np.int8) for _ in range(n)]
