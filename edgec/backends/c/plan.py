"""Static memory plan: every activation tensor gets a fixed offset in one arena.

Tensors whose operator only reinterprets the shape (RESHAPE, SQUEEZE, EXPAND_DIMS) share their
input's buffer. The model input is read in place from the caller's buffer and the model output is
written straight into the caller's buffer, so neither takes arena space. The other buffers are
placed greedy-by-size (elementwise operators write over an input they are the last to read),
like TFLite Micro's GreedyMemoryPlanner: biggest first, each at the lowest
offset that does not overlap a buffer alive at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgec.core.errors import InputError

ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
# Kernels that read element i (of a same-shaped input) before writing element i: safe in place.
INPLACE_OPS = ("ADD", "MUL", "LOGISTIC", "TANH", "HARD_SWISH", "QUANTIZE", "RELU", "RELU6", "SOFTMAX")
ALIGN = 8


@dataclass
class Buffer:
    """One buffer of the plan: the tensors that share it, its size, lifetime and placement."""

    root: int
    size: int
    first: int
    last: int
    where: str = "arena"  # "arena", "input" or "output"
    offset: int = 0


@dataclass
class MemoryPlan:
    """Tensor index -> buffer, and the arena size the placement needs."""

    buffers: dict[int, Buffer]
    root_of: dict[int, int]
    arena_bytes: int
    in_place: set[int] = field(default_factory=set)  # operators that write over their input

    def buffer(self, tensor: int) -> Buffer:
        """The buffer holding ``tensor``."""
        return self.buffers[self.root_of[tensor]]

    def scratch(self, op_index: int) -> Buffer:
        """The scratch buffer of operator ``op_index``."""
        return self.buffers[-1 - op_index]


_ITEM_BYTES = {"FLOAT32": 4, "INT32": 4, "INT16": 2}  # everything else the plan holds is int8


def _nbytes(tensor) -> int:
    n = _ITEM_BYTES.get(tensor.type, 1)
    for d in tensor.shape:
        n *= max(int(d), 1)
    return n


def _last_uses(model) -> dict[int, int]:
    last: dict[int, int] = {}
    for i, op in enumerate(model.operators):
        for t in op.inputs:
            if t >= 0:
                last[t] = i
    for t in model.outputs:
        last[t] = len(model.operators)
    return last


def _roots(model, row_in_place) -> tuple[dict[int, int], set[int]]:
    """Group tensors that share one buffer: shape-only ops, and ops that run in place
    (elementwise ones, and convolutions that ``row_in_place`` accepts)."""
    members = {t.index: [t.index] for t in model.tensors if not t.is_constant}
    root_of = {t: t for t in members}
    last = _last_uses(model)
    model_input = model.inputs[0]

    def join(keep: int, other: int) -> None:
        keep, other = root_of[keep], root_of[other]
        for t in members.pop(other):
            root_of[t] = keep
            members[keep].append(t)

    in_place: set[int] = set()
    for i, op in enumerate(model.operators):
        out = op.outputs[0] if op.outputs else -1
        if op.name in ALIAS_OPS and op.inputs[0] in root_of:
            join(op.inputs[0], out)
            continue
        if op.name in INPLACE_OPS:
            candidates = op.inputs
        elif row_in_place is not None and row_in_place(op):
            candidates = op.inputs[:1]
        else:
            continue
        for t in candidates:
            # In place when this op is the last reader of the whole group, the types and sizes
            # match and the group is not the caller's (read-only) input.
            if (t in root_of and model.tensors[t].type == model.tensors[out].type
                    and _nbytes(model.tensors[t]) == _nbytes(model.tensors[out])
                    and root_of[t] != root_of[model_input] and root_of[t] != root_of[out]
                    and max(last.get(m, -1) for m in members[root_of[t]]) == i):
                join(t, out)
                in_place.add(i)
                break
    return root_of, in_place


def plan_memory(model, *, scratch_bytes=None, row_in_place=None) -> MemoryPlan:
    """Build the static plan for the (already validated) int8 model.

    ``row_in_place(op) -> bool`` says whether a convolution's kernel can write its output over its
    input (row by row, through a small ring buffer); it then does so when no later operator reads
    that input. ``scratch_bytes(op, in_place) -> int`` gives the scratch an operator's kernel needs
    while it runs; those buffers get the key ``-1 - op_index`` in ``buffers``.
    """
    root_of, in_place = _roots(model, row_in_place)
    buffers: dict[int, Buffer] = {}
    for root in set(root_of.values()):
        buffers[root] = Buffer(root, _nbytes(model.tensors[root]), len(model.operators), -1)
    for i, op in enumerate(model.operators):
        for t in op.inputs:
            if t >= 0 and t in root_of:
                b = buffers[root_of[t]]
                b.last = max(b.last, i)
                b.first = min(b.first, i)
        for t in op.outputs:
            b = buffers[root_of[t]]
            b.first = min(b.first, i)
            b.last = max(b.last, i)
    (inp,), (out,) = model.inputs, model.outputs
    if root_of[inp] == root_of[out]:
        raise InputError("the model output is its input reshaped: nothing to compute", stage="export")
    for i, op in enumerate(model.operators):
        size = scratch_bytes(op, i in in_place) if scratch_bytes else 0
        if size:
            buffers[-1 - i] = Buffer(-1 - i, size, i, i)
    buffers[root_of[inp]].where = "input"
    buffers[root_of[out]].where = "output"
    arena = _place([b for b in buffers.values() if b.where == "arena" and b.last >= 0])
    return MemoryPlan(buffers, root_of, arena, in_place)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _place(todo: list[Buffer]) -> int:
    placed: list[Buffer] = []
    end = 0
    for b in sorted(todo, key=lambda b: (-b.size, b.first, b.root)):
        live = sorted((p for p in placed if p.first <= b.last and b.first <= p.last),
                      key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + b.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        b.offset = offset
        placed.append(b)
        end = max(end, offset + b.size)
    return _align(end)
