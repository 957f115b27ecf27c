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
# In a layout, the Keras batch axis when no ONNX axis of the value holds it: ``perm == (SAMPLE, *p)``
# means ``keras_tensor[n] == np.transpose(onnx_value_of_sample_n, p)`` (one more axis than the ONNX value).
SAMPLE = -1


class Value:
    """A lowered ONNX value: a Keras tensor in layout ``perm`` of the ONNX value, or a constant.

    ``keras_tensor == np.transpose(onnx_value, perm)``, and Keras axis 0 is always the samples' axis:
    ``perm[0]`` is ONNX axis 0 (the batch), or, in a graph whose batch is 1, any ONNX axis of size 1
    or :data:`SAMPLE`. So PyTorch's attention, which transposes (1, L, E) to (L, 1, E) and splits heads
    into (H, L, D), keeps every sample independent and the Keras model batch-agnostic.
    """

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
        inputs = [v.name for v in model.graph.input if v.name not in self.values]
        # With one sample per run, the ONNX batch axis is an ordinary axis of size 1 that ops may move.
        self.batch_one = bool(inputs) and all(self.shapes.get(n, (0,))[:1] == (1,) for n in inputs)

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
        """The Keras tensor of ONNX value ``name`` in layout ``perm`` (adds a Permute and/or Reshape if needed).

        The Keras batch axis may change which ONNX axis it holds only between axes of size 1 (and
        :data:`SAMPLE`) in a batch-1 graph; then the non-unit axes keep their memory order, so a
        RESHAPE (after a TRANSPOSE only when they must be reordered) moves it.
        """
        value = self.values[name]
        if value.is_const:
            raise InputError(f"value '{name}' is a constant where a tensor is expected", stage=STAGE)
        perm, src = tuple(perm), tuple(value.perm)
        if src == perm:
            return value.tensor
        shape = self.shape(name)
        if src[0] != perm[0]:
            if not self.batch_one or any(a != SAMPLE and shape[a] != 1 for a in (src[0], perm[0])):
                raise InputError(f"value '{name}' of shape {shape}: layout {perm} would move the batch axis "
                                 f"(held by ONNX axis {src[0]}); only a graph with batch 1 can move it",
                                 stage=STAGE)
            # First the same batch axis with the other axes in the order of ``perm`` ...
            rest = [a for a in perm[1:] if a != src[0]] + ([perm[0]] if perm[0] != SAMPLE else [])
            x = self.layout(name, (src[0], *rest))
            # ... then only unit axes differ: a reshape relabels them.
            y = self.tf.reshape(x, [-1, *(shape[a] for a in perm[1:])], name=self.name_for(name, "_rebatch"))
        elif self.big_axes(name, src) == self.big_axes(name, perm):
            # Only axes of size 1 move: same bytes, a reshape (nothing at all if the shape stays).
            dims = [shape[a] for a in perm[1:]]
            x = value.tensor
            y = x if list(x.shape[1:]) == dims else self.tf.reshape(
                x, [-1, *dims], name=self.name_for(name, "_reshape"))
        else:
            rel = [src.index(p) for p in perm]
            y = self.keras.layers.Permute(tuple(rel[1:]), name=self.name_for(name, "_permute"))(value.tensor)
        self.values[name] = Value(y, perm)  # later users of this layout share the Permute
        return y

    def big_axes(self, name: str, perm: tuple[int, ...]) -> list[int]:
        """The ONNX axes of size > 1 in ``perm`` after the Keras batch axis (their memory order)."""
        shape = self.shape(name)
        return [a for a in perm[1:] if shape[a] != 1]

    def onnx_perm(self, name: str) -> tuple[int, ...]:
        """The ONNX layout of value ``name``: its axes in order, after :data:`SAMPLE` when axis 0 is not
        of size 1 in a batch-1 graph (e.g. attention's (L, N, E) and (H, L, D) values)."""
        shape = self.shape(name)
        axes = tuple(range(len(shape)))
        return (SAMPLE, *axes) if self.batch_one and shape[0] != 1 else axes

    def ordered(self, name: str) -> tuple[Any, tuple[int, ...]]:
        """Value ``name`` as (Keras tensor, layout) with its non-unit axes in ONNX order, i.e. in ONNX memory
        order per sample, as a Reshape needs; permuted only when they are not."""
        value = self.values[name]
        big = self.big_axes(name, value.perm)
        if big == sorted(big):
            return value.tensor, tuple(value.perm)
        perm = (value.perm[0], *sorted(a for a in value.perm[1:]))
        return self.layout(name, perm), perm

    def last_axis_last(self, name: str) -> tuple[Any, tuple[int, ...]]:
        """Value ``name`` as (Keras tensor, layout) with its last ONNX axis last, as Dense contracts it."""
        value = self.values[name]
        last = len(self.shape(name)) - 1
        if value.perm[-1] == last and value.perm[0] != last:
            return value.tensor, tuple(value.perm)
        return self.onnx_layout(name), self.onnx_perm(name)

    def const_layout(self, const: Any, perm: tuple[int, ...], rank: int) -> np.ndarray:
        """A constant operand broadcast to ``rank`` ONNX axes, in layout ``perm`` (a leading 1 for SAMPLE)."""
        c = np.asarray(const, np.float32)
        c = c.reshape((1,) * (rank - c.ndim) + c.shape)
        c = np.transpose(c, [a for a in perm if a != SAMPLE])
        return c[None] if perm[0] == SAMPLE else c

    def name_for(self, value_name: str, suffix: str) -> str:
        class _Named:
            name, op_type = value_name, ""
        return self.name(_Named, suffix)

    def onnx_layout(self, name: str) -> Any:
        """The Keras tensor of ``name`` in :meth:`onnx_perm`."""
        return self.layout(name, self.onnx_perm(name))

    def batch_first(self, name: str) -> None:
        """Bring a value whose batch axis moved back to ONNX axis 0 (for handlers written for that case)."""
        value = self.values[name]
        if value.is_const or value.perm[0] == 0:
            return
        if self.shape(name)[0] != 1:
            raise InputError(f"value '{name}' of shape {self.shape(name)}: its first axis is not the batch "
                             "(an earlier Transpose/Reshape moved it) and this operator needs it there",
                             stage=STAGE)
        self.layout(name, (0, *(a for a in value.perm if a not in (0, SAMPLE))))

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
