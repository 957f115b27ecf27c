"""Facts of an ONNX graph that the reader, the fuser and the lowering all need: its signature, its
weight count, and random inputs of its shape (no lowering, no folding here, so each of them can use it)."""

from __future__ import annotations

from typing import Any

import numpy as np


def signature(values: Any, model: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape without batch, numpy dtype name) for graph inputs/outputs (initializers skipped)."""
    from onnx import helper

    initializers = {t.name for t in model.graph.initializer}
    out = {}
    for v in values:
        if v.name in initializers:
            continue
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        out[v.name] = (shape[1:], str(helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return out


def param_count(model: Any) -> int:
    """Number of weights in an ONNX graph (elements of its floating-point initializers)."""
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    return int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer if t.data_type in floats))


def random_inputs(model: Any, *, samples: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float32 inputs for every graph input, batch first (fixed seed)."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((samples, *shape)).astype(np.float32)
            for name, (shape, _) in signature(model.graph.input, model).items()}
