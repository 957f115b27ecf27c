"""What every runtime shares: float samples to the artifact's input types and order, outputs back to float.

Each runtime module (:mod:`edgec.runtimes.tflm`, ``litert``, ``onnxruntime``, ``openvino``; the
generated C runs through :mod:`edgec.backends.c`) has a ``predict(artifact, inputs) -> list[np.ndarray]``
that takes float inputs (batch first, keyed by input name), quantizes them itself when the artifact
has integer inputs, and returns dequantized float outputs, so verification compares like with like.
Verification's table of them by name is ``edgec.verify.host.RUNTIMES``.
"""

from __future__ import annotations

import numpy as np

from edgec.core.errors import InputError, ToolchainError
from edgec.core.tflite_model import NUMPY_TYPES, parse


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float -> the input's dtype with its scale and zero point (TFLite's round-half-away rule)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = _qparams(detail)
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """The output's integer values -> float with its scale and zero point."""
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = _qparams(detail)
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def input_details(tflite: bytes) -> list[dict]:
    """The inputs of a ``.tflite`` as :func:`quantize_input` reads them, without an interpreter."""
    model = parse(tflite)
    # The same dtypes the interpreters report (TFLite's tensor types), so callers may use either.
    return [{"dtype": NUMPY_TYPES.get(model.tensors[i].type, np.float32), "shape": model.tensors[i].shape,
             "quantization_parameters": {"scales": model.tensors[i].scales,
                                         "zero_points": model.tensors[i].zero_points}} for i in model.inputs]


def quantize_samples(tflite: bytes, arrays: list[np.ndarray] | dict[str, np.ndarray]) -> list:
    """Float samples (one array per model input, batch first) in the model's input types, one sample at
    a time: a ``(1, ...)`` array each for a single-input model, else a list of them per sample.

    ``arrays`` is a list in the model's input order, or a dict by input name, put in that order by
    :func:`order_inputs` (the converter may order a multi-input model's inputs unlike the data).
    """
    details = input_details(tflite)
    if isinstance(arrays, dict):
        model = parse(tflite)
        arrays = order_inputs(arrays, [model.tensors[i].name for i in model.inputs])
    samples = []
    for n in range(len(arrays[0])):
        per_input = [quantize_input(x[n:n + 1], d) for x, d in zip(arrays, details)]
        samples.append(per_input[0] if len(per_input) == 1 else per_input)
    return samples


def _qparams(detail: dict) -> tuple[float, int]:
    q = detail.get("quantization_parameters") or {}
    scales = q.get("scales")
    if scales is not None and len(scales):
        return float(scales[0]), int(q["zero_points"][0])
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        raise ToolchainError(f"integer tensor '{detail.get('name')}' has no quantization parameters")
    return float(scale), int(zero)


def _input_name(tensor_name: str) -> str:
    """``serving_default_image:0`` (the converter's signature naming) -> ``image``."""
    name = tensor_name.split(":")[0]
    return name.removeprefix("serving_default_")


def order_inputs(inputs: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Inputs in the artifact's order: by name when the names match (also TFLite's
    ``serving_default_<name>:0``), else by position when the counts agree."""
    if all(n in inputs for n in names):
        return [inputs[n] for n in names]
    plain = [_input_name(n) for n in names]
    if all(n in inputs for n in plain):
        return [inputs[n] for n in plain]
    if len(inputs) != len(names):
        raise InputError(f"samples for {sorted(inputs)} do not match the artifact inputs {names}", stage="verify")
    return list(inputs.values())


def fit_layout(x: np.ndarray, shape: list, name: str) -> np.ndarray:
    """``x`` (batch first) in the model input's ``shape``, transposing NHWC <-> NCHW when needed."""
    want = [d if isinstance(d, int) and d > 0 else None for d in shape]

    def matches(a: np.ndarray) -> bool:
        return a.ndim == len(want) and all(w is None or w == s for w, s in zip(want[1:], a.shape[1:]))

    if matches(x):
        return x
    if x.ndim == 4:
        for perm in ((0, 3, 1, 2), (0, 2, 3, 1)):
            if matches(x.transpose(perm)):
                return np.ascontiguousarray(x.transpose(perm))
    raise InputError(f"input '{name}': samples of shape {x.shape[1:]} do not fit the artifact's "
                     f"{tuple(shape[1:])}", stage="verify")


def batches(arrays: list[np.ndarray], fixed_batch: bool):
    """``arrays`` in chunks: one sample at a time for a fixed batch of 1, else all at once."""
    count = len(arrays[0])
    step = 1 if fixed_batch else max(count, 1)
    for start in range(0, count, step):
        yield [a[start:start + step] for a in arrays]
