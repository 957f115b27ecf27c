"""Run ``.tflite`` artifacts in LiteRT (``ai_edge_litert``): float samples in, float outputs out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.core.tflite_model import parse
from edgec.runtimes.base import dequantize_output, order_inputs, quantize_input


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


def litert_readable(tflite: bytes) -> str | None:
    """None if LiteRT can run this flatbuffer, else why not (TFLite Micro LUT compression, or zero points
    shared by all channels, which only TFLite Micro accepts)."""
    model = parse(tflite)
    if "TFLM_DECODE" in model.op_names():
        return "TFLite Micro LUT compression (TFLM_DECODE)"
    if any(t.scales is not None and t.zero_points is not None and len(t.zero_points) != len(t.scales)
           for t in model.tensors):
        return "one zero point shared by all channels (TFLite Micro reads it since 2022, tflite-micro PR #813)"
    return None
