"""The per-layer table of ``report.json`` for an ONNX artifact (QDQ int8 or float), from the shipped file.

Same columns as :mod:`edgec.report.layer_table`: one row per compute node (QuantizeLinear/DequantizeLinear
are folded into the node that reads them), its output shape (ONNX shape inference), MACs, the bytes
of the initializers it reads as stored (int8 weights with their scales and zero points), and for
quantized weights the sparsity (values at the zero point) and unique values per output channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.frontend.onnx.summary import MAC_OPS, node_macs, shapes_of

_QDQ = ("QuantizeLinear", "DequantizeLinear")


def _layer(tensor: str) -> str:
    parts = tensor.split(":")[0].split("/")
    return parts[-2] if len(parts) >= 3 else tensor


def _weight_stats(node, values: np.ndarray, zero_point: np.ndarray) -> tuple[float, int]:
    """Sparsity (share of values at the zero point) and max unique values per output channel."""
    transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not any(
        a.name == "transB" and a.i for a in node.attribute))
    axis = 1 if transposed and values.ndim == 2 else 0  # Conv and Gemm(transB): output channels first
    zp = zero_point.reshape([-1 if i == axis else 1 for i in range(values.ndim)]) if zero_point.size > 1 \
        else zero_point.reshape(())
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    return round(float(np.mean(values == zp)), 6), int(max(len(np.unique(r)) for r in moved))


def rows(path: Path) -> list[dict]:
    """One row per compute node of the ONNX file at ``path``, in graph order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    shapes = shapes_of(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = {n.output[0]: list(n.input) for n in model.graph.node if n.op_type == "DequantizeLinear"
          and n.input[0] in inits}
    counted: set[str] = set()
    out = []
    for index, node in enumerate(model.graph.node):
        if node.op_type in _QDQ:
            continue
        stored = 0
        for name in node.input:
            for src in dq.get(name, [name]):
                if src in inits and src not in counted:
                    counted.add(src)
                    stored += int(inits[src].nbytes)
        sparsity = unique = None
        weight = node.input[1] if node.op_type in MAC_OPS and len(node.input) > 1 else None
        if weight in dq and len(dq[weight]) > 2 and dq[weight][2] in inits:
            sparsity, unique = _weight_stats(node, inits[dq[weight][0]], inits[dq[weight][2]])
        out.append({
            "index": index, "name": _layer(node.output[0]), "node": node.name, "tensor": node.output[0],
            "op": node.op_type,
            "output_shape": list(shapes.get(node.output[0]) or []) or None,
            "macs": node_macs(node, shapes) if node.op_type in MAC_OPS else 0,
            "weight_bytes": stored, "sparsity": sparsity, "unique_values_max_per_channel": unique,
            "int8_snr_db": None, "time_share": None,
        })
    return out
