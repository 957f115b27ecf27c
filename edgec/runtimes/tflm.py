"""Raw runs in the TFLite Micro Python interpreter: already-typed inputs in, raw outputs out.

Verification's ``tflm`` runtime, the LUT bit-exactness gate, the C backend's reference outputs and
device verification all run samples through :func:`run_tflm`, always with the large host arena: the
interpreter's default (ten times the model size) is too small for large activations, and DECODE outputs
of a LUT-compressed model need arena room too. Quantizing and dequantizing are the callers' business
(:mod:`edgec.runtimes.base`); here values pass exactly as the interpreter takes and gives them.

The interpreter runs in edgec's worker process (:mod:`edgec.core.isolate`): a model that makes its C++
abort raises :class:`edgec.core.isolate.NativeCrash` (naming ``stage`` and the model) instead of killing
edgec. All samples of a call run in one round trip to the worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edgec.core import isolate
from edgec.core.tflite_model import parse
from edgec.runtimes.base import dequantize_output, quantize_samples
from edgec.runtimes.tflm_arena import HOST_ARENA_BYTES

INTERPRETER = "TFLite Micro interpreter"


def _interpreter(tflite: bytes):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(tflite, arena_size=HOST_ARENA_BYTES)


def tflm_io_details(tflite: bytes, *, stage: str = "tflm", model: str = "the model"
                    ) -> tuple[list[dict], list[dict]]:
    """The interpreter's input and output details (``dtype``, ``shape``, ``quantization_parameters``),
    in model order: what :func:`edgec.runtimes.base.quantize_input` and ``dequantize_output`` read."""
    return isolate.call(_io_details, tflite, stage=stage, what=f"{INTERPRETER} on {model}")


def _io_details(tflite: bytes) -> tuple[list[dict], list[dict]]:
    model = parse(tflite)
    interp = _interpreter(tflite)
    return ([interp.get_input_details(i) for i in range(len(model.inputs))],
            [interp.get_output_details(i) for i in range(len(model.outputs))])


def run_tflm(tflite: bytes, samples: Iterable[np.ndarray | Sequence[np.ndarray]], *, stage: str = "tflm",
             model: str = "the model") -> list[np.ndarray]:
    """Run ``samples`` one at a time through the TFLite Micro interpreter (reference kernels).

    A sample is one array for a single-input model (or to set only input 0), else a list of arrays,
    one per model input in model order. Arrays must already have the input's type (the interpreter
    refuses any other; quantize float samples first) and are reshaped to the input's shape, so the
    batch dimension of 1 may be left out; an array of the wrong size gets the interpreter's ValueError.
    Returns, per model output, the raw outputs (not dequantized) stacked over samples: shape
    ``(len(samples), *output shape)``. ``stage`` and ``model`` name what ran if the interpreter crashes.
    """
    return isolate.call(_run, tflite, list(samples), stage=stage, what=f"{INTERPRETER} on {model}")


def _run(tflite: bytes, samples: list) -> list[np.ndarray]:
    model = parse(tflite)
    interp = _interpreter(tflite)
    shapes = [interp.get_input_details(i)["shape"] for i in range(len(model.inputs))]
    n_out = len(model.outputs)
    outs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    for sample in samples:
        arrays = sample if isinstance(sample, (list, tuple)) else [sample]
        for i, x in enumerate(arrays):
            x = np.asarray(x)
            # A wrong size goes in as it is, for the interpreter's own error message.
            interp.set_input(x.reshape(shapes[i]) if i < len(shapes) and x.size == np.prod(shapes[i]) else x, i)
        interp.invoke()
        for i in range(n_out):
            outs[i].append(np.array(interp.get_output(i)))
    return [np.stack(o) if o else _empty(interp.get_output_details(i)) for i, o in enumerate(outs)]


def _empty(detail: dict) -> np.ndarray:
    return np.empty((0, *detail["shape"]), detail["dtype"])


def first_difference(reference: bytes, candidate: bytes, samples: list, *, stage: str = "tflm",
                     candidate_name: str = "the candidate model") -> str | None:
    """Run both models on ``samples`` in TFLite Micro; None when every output is identical, else where
    the first difference is (sample, output, max difference in LSB). A crash of either model is a
    :class:`~edgec.core.isolate.NativeCrash` naming it (``candidate_name`` for the candidate)."""
    ref = run_tflm(reference, samples, stage=stage, model="the reference model")
    got = run_tflm(candidate, samples, stage=stage, model=candidate_name)
    for n in range(len(samples)):
        for i, (x, y) in enumerate((a[n], b[n]) for a, b in zip(ref, got)):
            if x.shape != y.shape:
                return f"sample {n}, output {i}: shape {y.shape} instead of {x.shape}"
            if not np.array_equal(x, y):
                return f"sample {n}, output {i}, max diff {int(np.max(np.abs(x.astype(np.int64) - y)))} LSB"
    return None


def predict_tflm(artifact: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run every sample through the TFLite Micro interpreter (reference kernels), one at a time."""
    raw = Path(artifact).read_bytes()
    where = {"stage": "verify", "model": str(artifact)}
    out_details = tflm_io_details(raw, **where)[1]
    # Stacked per-sample outputs (N, 1, ...) -> batch first (N, ...), as the other runtimes return.
    return [dequantize_output(y.reshape(-1, *y.shape[2:]), d)
            for y, d in zip(run_tflm(raw, quantize_samples(raw, inputs), **where), out_details)]


def top1_tflm(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Predicted classes (argmax of the first output) of a single-input model in TFLite Micro: float
    samples ``x`` (batch first) quantized with the model's own input parameters."""
    outputs = run_tflm(tflite, quantize_samples(tflite, [np.asarray(x, np.float32)]))[0]
    return outputs.reshape(len(outputs), -1).argmax(1)
