"""The state of one ONNX -> Keras lowering (:class:`Lowering`) and the value type it tracks.

Shared by :mod:`edgec.frontend.onnx.lower` (the driver) and the per-operator modules (``lower_ops``,
``lower_shape``, ``lower_zoo``, ``lower_attention``), which the driver imports: so it is its own module.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from edgec.core.errors import InputError
from edgec.core.tf import keras, tensorflow

STAGE = "lower"
NHWC = (0, 2, 3, 1)


class Value:
    """A lowered ONNX value: a Keras tensor in layout ``perm`` of the ONNX value, or a constant."""

    def __init__(self, tensor: Any = None, perm: tuple[int, ...] | None = None, const: Any = None):
        self.tensor, self.perm, self.const = tensor, perm, const

    @property
    def is_const(self) -> bool:
        return self.const is not None


class Lowering:
    """State of one lowering: ONNX shapes, lowered values, and the Keras modules."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        self.tf, self.keras = tensorflow(), keras()
        self.model = model
        self.values: dict[str, Value] = {
            t.name: Value(const=numpy_helper.to_array(t)) for t in model.graph.initializer}
        self.shapes = _shapes(model)
        self.consumers: dict[str, list[Any]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.skip: set[int] = set()  # ids of nodes already folded into an earlier layer
        self.used_names: set[str] = set()

    def name(self, node: Any, suffix: str = "") -> str:
        """A unique, Keras-safe layer name derived from the ONNX node name."""
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", (node.name or node.op_type) + suffix).strip("_.") or "op"
        if not base[0].isalpha():
            base = "n_" + base
        name, i = base, 1
        while name in self.used_names:
            name, i = f"{base}_{i}", i + 1
        self.used_names.add(name)
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.values and self.values[name].is_const:
            return tuple(self.values[name].const.shape)
        if name not in self.shapes:
            raise InputError(f"value '{name}' has no inferred shape; export the model with static shapes",
                             stage=STAGE)
        return self.shapes[name]

    def const(self, node: Any, index: int, *, what: str = "input") -> np.ndarray:
        """Input ``index`` of ``node`` as a constant, or an InputError saying it must be one."""
        if index >= len(node.input) or not node.input[index]:
            return None
        value = self.values.get(node.input[index])
        if value is None or not value.is_const:
            raise InputError(f"node '{node.name}' ({node.op_type}): {what} {index} must be a constant "
                             "(initializer) for the lowering; fold constants or export with static "
                             "weights", stage=STAGE)
        return value.const

    def layout(self, name: str, perm: tuple[int, ...]) -> Any:
        """The Keras tensor of ONNX value ``name`` in layout ``perm`` (adds a Permute if needed)."""
        value = self.values[name]
        if value.is_const:
            raise InputError(f"value '{name}' is a constant where a tensor is expected", stage=STAGE)
        if tuple(value.perm) == tuple(perm):
            return value.tensor
        rel = [list(value.perm).index(p) for p in perm]
        out = self.keras.layers.Permute(tuple(rel[1:]), name=self.name_for(name, "_permute"))(value.tensor)
        self.values[name] = Value(out, tuple(perm))  # later users of this layout share the Permute
        return out

    def name_for(self, value_name: str, suffix: str) -> str:
        class _Named:
            name, op_type = value_name, ""
        return self.name(_Named, suffix)

    def onnx_layout(self, name: str) -> Any:
        return self.layout(name, tuple(range(len(self.shape(name)))))

    def set(self, name: str, tensor: Any, perm: tuple[int, ...]) -> None:
        self.values[name] = Value(tensor, tuple(perm))


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    out = {}
    for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        t = v.type.tensor_type
        if t.HasField("shape"):
            out[v.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return out


def attrs(node: Any) -> dict[str, Any]:
    """The node's attributes as Python values."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}
