"""Run an artifact in its real runtime: float samples in, float (dequantized) outputs out.

``RUNTIMES`` maps a runtime name to ``predict(artifact, inputs) -> list[np.ndarray]``. Each takes
float inputs (batch first, keyed by input name), quantizes them itself when the artifact has integer
inputs, and returns dequantized float outputs, so verification compares like with like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.runtimes import onnxruntime as runtimes_onnx
from edgec.backends.c.export_c import predict as predict_c
from edgec.core.errors import InputError, ToolchainError
from edgec.core.tflite_model import _NUMPY_TYPES, parse
from edgec.runtimes.tflm import run_tflm, tflm_io_details


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
    return [{"dtype": _NUMPY_TYPES.get(model.tensors[i].type, np.float32), "shape": model.tensors[i].shape,
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


def predict_tflm(artifact: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run every sample through the TFLite Micro interpreter (reference kernels), one at a time."""
    raw = Path(artifact).read_bytes()
    where = {"stage": "verify", "model": str(artifact)}
    out_details = tflm_io_details(raw, **where)[1]
    # Stacked per-sample outputs (N, 1, ...) -> batch first (N, ...), as the other runtimes return.
    return [dequantize_output(y.reshape(-1, *y.shape[2:]), d)
            for y, d in zip(run_tflm(raw, quantize_samples(raw, inputs), **where), out_details)]


def predict_litert(artifact: Path | bytes, inputs: dict[str, np.ndarray], *, num_threads: int = 1,
                   reference_kernels: bool = False) -> list[np.ndarray]:
    """Run every sample through LiteRT (``ai_edge_litert``): XNNPACK as deployed on phones, or
    TFLite's reference kernels (``reference_kernels``), which TFLite Micro must match bit for bit.
    ``artifact`` is a ``.tflite`` path or its bytes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    raw = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
    interp = Interpreter(model_content=raw, num_threads=num_threads,
                         experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    in_details = interp.get_input_details()
    out_details = interp.get_output_details()
    arrays = order_inputs(inputs, [d["name"] for d in in_details])
    outs: list[list[np.ndarray]] = [[] for _ in out_details]
    for n in range(len(arrays[0])):
        for x, d in zip(arrays, in_details):
            interp.set_tensor(d["index"], quantize_input(x[n:n + 1], d).reshape(d["shape"]))
        interp.invoke()
        for i, d in enumerate(out_details):
            outs[i].append(dequantize_output(interp.get_tensor(d["index"]), d))
    return [np.concatenate(o) for o in outs]


def predict_litert_reference(artifact: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """LiteRT with its reference kernels: the cross-check that TFLite Micro should equal exactly."""
    return predict_litert(artifact, inputs, reference_kernels=True)


RUNTIMES = {
    "tflm": predict_tflm,
    "litert": predict_litert,
    "litert-reference": predict_litert_reference,
    "onnxruntime": runtimes_onnx.predict_onnxruntime,
    "openvino": runtimes_onnx.predict_openvino,
    "c": predict_c,
}
