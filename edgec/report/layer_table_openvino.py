"""The per-layer table of ``report.json`` for an OpenVINO artifact, read from the shipped ``model.xml``/``.bin``.

One row per compute operation of the IR, in execution order. Constants and the small subgraphs that
only transform constants (NNCF's int8 weights: ``Constant -> Convert -> Multiply``) are folded into
the operation that reads them, and so are FakeQuantize nodes (activation quantization, no weights of
their own). Weight bytes are the constants as stored in ``model.bin``; MACs come from the IR's static
shapes; sparsity and unique values per output channel are read from int8 weight constants that are
only scaled (a zero point subtracted in the IR leaves them ``null``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_SKIP = {"Parameter", "Result", "Constant", "FakeQuantize"}
_FOLDABLE = {"Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}


def _name(friendly: str) -> str:
    parts = friendly.split("/")
    return "/".join(parts[1:]) if len(parts) >= 3 else friendly


def _shape(port) -> list[int] | None:
    shape = port.get_partial_shape()
    return [int(d.get_length()) for d in shape] if shape.is_static else None


def _macs(op) -> int:
    kind = op.get_type_name()
    out = _shape(op.output(0))
    if kind not in ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData") or out is None:
        return 0
    data, weights = _shape(op.input(0)), _shape(op.input(1))
    if data is None or weights is None:
        return 0
    if kind == "Convolution":  # weights [Cout, Cin, k...]
        return int(np.prod(out)) * int(np.prod(weights[1:]))
    if kind == "GroupConvolution":  # weights [G, Cout/G, Cin/G, k...]
        return int(np.prod(out)) * int(np.prod(weights[2:]))
    if kind == "ConvolutionBackpropData":  # weights [Cin, Cout, k...]: each input spreads over Cout * k
        return int(np.prod(data)) * int(np.prod(weights[1:]))
    transpose_a = bool(op.get_attributes().get("transpose_a", False))
    return int(np.prod(out)) * int(data[-2] if transpose_a and len(data) >= 2 else data[-1])


def _sources(op, constant_like: set) -> tuple[list, bool]:
    """Constants ``op`` reads through constant-only subgraphs, and whether a zero point is subtracted."""
    found, subtracted, stack = [], False, [op.input_value(i).get_node() for i in range(op.get_input_size())]
    while stack:
        node = stack.pop()
        if node.get_type_name() == "Constant":
            found.append(node)
        elif id(node) in constant_like:
            subtracted |= node.get_type_name() == "Subtract"
            stack += [node.input_value(i).get_node() for i in range(node.get_input_size())]
    return found, subtracted


def rows(xml: Path) -> list[dict]:
    """One row per compute operation of the OpenVINO IR at ``xml``."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    constant_like: set[int] = set()  # operations whose every input is a constant (or derived from one)
    counted: set[int] = set()
    out = []
    for index, op in enumerate(model.get_ordered_ops()):
        kind = op.get_type_name()
        inputs = [op.input_value(i).get_node() for i in range(op.get_input_size())]
        if kind in _FOLDABLE and inputs and all(n.get_type_name() == "Constant" or id(n) in constant_like
                                                 for n in inputs):
            constant_like.add(id(op))
            continue
        if kind in _SKIP:
            continue
        consts, subtracted = _sources(op, constant_like)
        stored = sum(c.get_byte_size() for c in consts if id(c) not in counted)
        counted.update(id(c) for c in consts)
        sparsity = unique = None
        int8 = [c for c in consts if str(c.get_element_type()) in ("<Type: 'int8_t'>", "<Type: 'uint8_t'>")]
        if _macs(op) and len(int8) == 1 and not subtracted:
            w = int8[0].get_data()
            if kind == "MatMul" and w.ndim == 2 and not op.get_attributes().get("transpose_b", False):
                w = w.T  # weights [K, N]: output channels last
            moved = w.reshape(w.shape[0], -1)
            sparsity, unique = round(float(np.mean(w == 0)), 6), int(max(len(np.unique(r)) for r in moved))
        out.append({"index": index, "name": _name(op.get_friendly_name()), "op": kind,
                    "output_shape": _shape(op.output(0)) if op.get_output_size() else None,
                    "macs": _macs(op), "weight_bytes": int(stored), "sparsity": sparsity,
                    "unique_values_max_per_channel": unique, "int8_snr_db": None, "time_share": None})
    return out
