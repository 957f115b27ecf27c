"""Will the calibration set and the model's activations fit in memory? Decided before any work.

The pipeline holds the calibration and evaluation samples as float32 arrays (compression,
verification and the reference outputs stack them) and runs the float model in batches of
:data:`BATCH`. From the declared shapes alone (a ``.npy`` is memory-mapped, so nothing is read)
that is at least ``samples * sample bytes + BATCH * activation bytes per sample``. When that lower
bound exceeds the memory available, the compile is refused with the numbers and what to change,
instead of being killed by the operating system halfway through.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgec.core.errors import InputError

BATCH = 32  # Keras predict's default batch, the largest the pipeline runs the float model with
FLOAT32 = 4


def sample_bytes(inputs: dict) -> int:
    """Bytes of one sample as float32, for ``inputs`` = ``{name: (shape without batch, dtype)}``."""
    return sum(FLOAT32 * math.prod(int(d) for d in shape if d not in (None, -1)) for shape, _ in inputs.values())


def activation_bytes(keras_model) -> int:
    """Bytes of every layer's float32 output for one sample (a Keras model, as loaded).

    0 for an ONNX model that no target lowers (``None``): ONNX Runtime sizes its own buffers, and the
    samples themselves are still counted by the caller.
    """
    if keras_model is None:
        return 0
    total = 0
    for layer in keras_model.layers:
        try:
            outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        except (AttributeError, ValueError):  # a layer used more than once has no single output
            continue
        for t in outputs:
            shape = tuple(getattr(t, "shape", ()) or ())[1:]
            total += FLOAT32 * math.prod(int(d) for d in shape if d is not None)
    return total


def available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable from ``/proc/meminfo`` in bytes (None where there is no such file)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gib(n: float) -> str:
    return f"{n / (1 << 30):,.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.1f} MiB"


def check(samples: int, per_sample: int, activations: int, available: int | None, *,
          what: str = "the calibration and evaluation sets") -> None:
    """Refuse (InputError, exit 2) when ``samples`` of ``per_sample`` bytes plus a batch of
    ``activations`` need more than ``available`` bytes; a pure function of its arguments."""
    if available is None:
        return
    data, batch = samples * per_sample, BATCH * activations
    needed = data + batch
    if needed <= available:
        return
    fits = max(0, (available - batch) // per_sample) if per_sample else 0
    change = (f"use at most {fits:,} samples" if fits else "use a smaller model or input shape")
    raise InputError(f"{what} ({samples:,} samples x {per_sample:,} B as float32 = {_gib(data)}) and the "
                     f"model's activations ({_gib(batch)} for a batch of {BATCH}) need at least {_gib(needed)}; "
                     f"{_gib(available)} of memory is available: {change}", stage="calibration")
