"""Facts ``edgec inspect`` states about an ONNX graph without lowering it: signature, size, MACs.

Read from the graph alone (ONNX's own shape inference, no runtime), so they exist even for a model
that no target can run. Parameters are the elements of the float constants the graph holds:
initializers, and the outputs of ``Constant`` / ``ConstantOfShape`` nodes (ONNX's "light" test
models store their weights that way). MACs are counted for Conv, ConvTranspose, Gemm and MatMul from
the inferred shapes; an operator whose shapes stay unknown is named instead of guessed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FLOAT_TYPES = {1: 4, 10: 2, 11: 8, 16: 2}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16 -> bytes per element
MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def shapes_of(model: Any) -> dict[str, tuple[int, ...] | None]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        inferred = model  # best effort: shapes left unknown are reported as such
    out: dict[str, tuple[int, ...] | None] = {}
    graph = inferred.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        known = all(d.HasField("dim_value") for d in dims) and info.type.tensor_type.HasField("shape")
        out[info.name] = tuple(int(d.dim_value) for d in dims) if known else None
    for init in graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def _elem_types(model: Any) -> dict[str, int]:
    import onnx

    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        graph = model.graph
    types = {i.name: i.type.tensor_type.elem_type for i in [*graph.input, *graph.value_info, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


def _constants(model: Any) -> list[str]:
    """Names of the tensors the graph holds as constants (initializers, Constant/ConstantOfShape outputs)."""
    names = [i.name for i in model.graph.initializer]
    names += [n.output[0] for n in model.graph.node if n.op_type in ("Constant", "ConstantOfShape")]
    return names


def node_macs(node: Any, shapes: dict) -> int | None:
    """MACs of one node, or None when a shape it needs is unknown."""
    out = shapes.get(node.output[0])
    ins = [shapes.get(name) if name else None for name in node.input]
    if node.op_type in ("Conv", "ConvTranspose"):
        w = ins[1] if len(ins) > 1 else None
        if out is None or w is None or (node.op_type == "ConvTranspose" and ins[0] is None):
            return None
        if node.op_type == "Conv":  # weights [Cout, Cin/group, k...]: each output reads Cin/group * k
            return int(np.prod(out)) * int(np.prod(w[1:]))
        return int(np.prod(ins[0])) * int(np.prod(w[1:]))  # each input spreads over Cout/group * k
    if out is None or ins[0] is None:
        return None
    a = ins[0]
    trans_a = next((att.i for att in node.attribute if att.name == "transA"), 0) if node.op_type == "Gemm" else 0
    reduce = a[-2] if trans_a and len(a) >= 2 else a[-1]
    return int(np.prod(out)) * int(reduce)


def _dtype(elem_type: int | None) -> str:
    from onnx import helper

    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return "unknown"


def summary(model: Any) -> dict[str, Any]:
    """``{"inputs", "outputs", "params", "float_bytes", "macs", "macs_unknown"}`` of an ONNX model."""
    shapes, types = shapes_of(model), _elem_types(model)
    constants = set(_constants(model))
    params = float_bytes = 0
    unknown_size = []
    for name in sorted(constants):
        width = _FLOAT_TYPES.get(types.get(name, 0))
        if width is None:
            continue  # shapes, indices: not parameters
        shape = shapes.get(name)
        if shape is None:
            unknown_size.append(name)
            continue
        params += int(np.prod(shape))
        float_bytes += int(np.prod(shape)) * width
    macs, unknown = 0, []
    for node in model.graph.node:
        if node.op_type in MAC_OPS:
            count = node_macs(node, shapes)
            if count is None:
                unknown.append(node.name or node.output[0])
            else:
                macs += count
    inputs = [i for i in model.graph.input if i.name not in constants]
    return {
        "inputs": [(i.name, shapes.get(i.name), _dtype(types.get(i.name))) for i in inputs],
        "outputs": [(o.name, shapes.get(o.name), _dtype(types.get(o.name))) for o in model.graph.output],
        "params": params, "float_bytes": float_bytes, "params_unknown": unknown_size,
        "macs": macs, "macs_unknown": unknown,
    }
