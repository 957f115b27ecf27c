"""Read a ``.tflite`` flatbuffer: operators, tensors, buffers, quantization.

Uses the schema bindings that ship with the ``tflite-micro`` package (no TensorFlow import), through
the flatbuffers object API (``ModelT``). Everything here describes the *final* artifact, so numbers in
reports come from the bytes that ship, not from the Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from edgec.core.errors import InputError


@cache
def schema():
    """The generated flatbuffer schema module for ``.tflite`` files."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@cache
def _builtin_names() -> dict[int, str]:
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@cache
def _type_names() -> dict[int, str]:
    types = schema().TensorType
    return {v: k for k, v in vars(types).items() if not k.startswith("_") and isinstance(v, int)}


NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
    "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "BOOL": np.bool_, "UINT32": np.uint32,
    "FLOAT64": np.float64, "UINT16": np.uint16,
}


@dataclass
class Tensor:
    """One tensor of the main subgraph, with its constant data when it has any."""

    index: int
    name: str
    type: str
    shape: tuple[int, ...]
    buffer: int
    data: np.ndarray | None
    scales: np.ndarray | None = None
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0
    packed: bytes | None = None  # INT4: the file's nibbles (``data`` holds them unpacked as int8)

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Operator:
    """One operator: its builtin (or custom) name, input/output tensor indices, options object."""

    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: object | None


@dataclass
class TFLiteModel:
    """A parsed ``.tflite`` model (first subgraph)."""

    raw: bytes
    model: object  # schema.ModelT
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int = 1
    extra: dict = field(default_factory=dict)

    def op_names(self) -> list[str]:
        """Distinct operator names, in order of first use."""
        seen: dict[str, None] = {}
        for op in self.operators:
            seen.setdefault(op.name, None)
        return list(seen)

    def op_counts(self) -> dict[str, int]:
        """How many times each operator occurs, sorted by name."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.name] = counts.get(op.name, 0) + 1
        return dict(sorted(counts.items()))


def op_name(model, opcode_index: int) -> str:
    code = model.operatorCodes[opcode_index]
    # Since schema v3a, builtinCode holds the op; deprecatedBuiltinCode is kept for old files.
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if builtin == schema().BuiltinOperator.CUSTOM:
        name = code.customCode
        return name.decode() if isinstance(name, bytes) else str(name)
    return _builtin_names().get(builtin, f"BUILTIN_{builtin}")


def _tensor(model, index: int, t) -> Tensor:
    type_name = _type_names().get(t.type, str(t.type))
    shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
    data = packed = None
    buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    if buf is not None and buf.data is not None and len(buf.data) and type_name in NUMPY_TYPES:
        arr = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), NUMPY_TYPES[type_name])
        data = arr.reshape(shape) if int(np.prod(shape)) == arr.size else arr
    elif buf is not None and buf.data is not None and len(buf.data) and type_name == "INT4":
        packed = bytes(np.asarray(buf.data, np.uint8))
        count = int(np.prod(shape))
        if len(packed) != (count + 1) // 2:
            raise InputError(f"corrupt TFLite flatbuffer: INT4 tensor {index} holds {len(packed)} bytes for "
                             f"{count} values", stage="load")
        data = _unpack_int4(packed, count).reshape(shape)
    elif buf is not None and getattr(buf, "offset", 0) and buf.size:
        raise InputError("buffers stored outside the flatbuffer (>2 GB models) are not supported",
                         stage="load")
    q = t.quantization
    scales = zps = None
    qdim = 0
    if q is not None and q.scale is not None and len(q.scale):
        scales = np.asarray(q.scale, np.float32)
        zps = np.asarray(q.zeroPoint, np.int64) if q.zeroPoint is not None else np.zeros_like(scales)
        qdim = int(q.quantizedDimension)
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    return Tensor(index, name, type_name, shape, int(t.buffer), data, scales, zps, qdim,
                  packed)


def _unpack_int4(packed: bytes, count: int) -> np.ndarray:
    """TFLite's INT4 packing: two values per byte, the first in the low nibble, sign-extended to int8."""
    b = np.frombuffer(packed, np.uint8)
    out = np.empty(b.size * 2, np.int8)
    out[0::2] = (b << 4).astype(np.int8) >> 4
    out[1::2] = b.astype(np.int8) >> 4
    return out[:count]


def parse(raw: bytes) -> TFLiteModel:
    """Parse ``.tflite`` bytes; a file that is not a TFLite flatbuffer is an :class:`InputError`."""
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no 'TFL3' identifier)", stage="load")
    try:
        model = schema().ModelT.InitFromPackedBuf(bytearray(raw), 0)
    except Exception as e:  # flatbuffers raises assorted errors on truncated data
        raise InputError(f"corrupt TFLite flatbuffer: {type(e).__name__}: {e}", stage="load") from None
    if not model.subgraphs:
        raise InputError("TFLite model has no subgraph", stage="load")
    graph = model.subgraphs[0]
    try:
        tensors = [_tensor(model, i, t) for i, t in enumerate(graph.tensors or [])]
        operators = [
            Operator(i, op_name(model, op.opcodeIndex), [int(x) for x in (op.inputs if op.inputs is not None else [])],
                     [int(x) for x in (op.outputs if op.outputs is not None else [])], op.builtinOptions)
            for i, op in enumerate(graph.operators or [])
        ]
        inputs = [int(i) for i in (graph.inputs if graph.inputs is not None else [])]
        outputs = [int(i) for i in (graph.outputs if graph.outputs is not None else [])]
    except (IndexError, ValueError, TypeError, UnicodeDecodeError, OverflowError) as e:
        # The object API unpacks without checking: indices, names and sizes are checked here.
        raise InputError(f"corrupt TFLite flatbuffer: {type(e).__name__}: {e}", stage="load") from None
    _check_indices(tensors, operators, inputs, outputs)
    return TFLiteModel(raw=raw, model=model, tensors=tensors, operators=operators,
                       inputs=inputs, outputs=outputs, subgraphs=len(model.subgraphs))


def _check_indices(tensors, operators, inputs, outputs) -> None:
    count = len(tensors)
    for op in operators:  # -1 marks an omitted optional input
        if any(not -1 <= t < count for t in op.inputs + op.outputs):
            raise InputError(f"corrupt TFLite flatbuffer: operator {op.index} ({op.name}) names a tensor "
                             f"outside 0..{count - 1}", stage="load")
    if any(not 0 <= t < count for t in inputs + outputs):
        raise InputError(f"corrupt TFLite flatbuffer: a graph input or output outside 0..{count - 1}",
                         stage="load")


def signature_outputs(raw: bytes) -> dict[str, int]:
    """Output name -> position in the model's output list, from the first signature ({} without one).

    The converter orders a multi-output model's outputs by signature name, not as Keras does, so this
    is how an artifact's outputs are matched to the Keras model's (TFLite Micro slimming drops the
    signature; the unslimmed ``intermediate/model_int8.tflite`` has the same output order).
    """
    model = schema().ModelT.InitFromPackedBuf(bytearray(raw), 0)
    if not model.signatureDefs or not model.subgraphs:
        return {}
    outputs = list(model.subgraphs[0].outputs)
    found = {}
    for m in model.signatureDefs[0].outputs or []:
        name = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
        if m.tensorIndex in outputs:
            found[name] = outputs.index(m.tensorIndex)
    return found


def constant_bytes(model: TFLiteModel) -> int:
    """Bytes of constant tensor data (weights, biases, tables) in the flatbuffer."""
    return sum(t.data.nbytes for t in model.tensors if t.data is not None)


def macs(model: TFLiteModel) -> int:
    """Multiply-accumulates of one inference, counted for conv, depthwise, dense and matmul ops."""
    total = 0
    for op in model.operators:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
                           "BATCH_MATMUL"):
            continue
        try:
            total += _op_macs(model, op)
        except IndexError:  # a tensor missing, or of another rank than the operator needs
            raise InputError(f"corrupt TFLite model: operator {op.index} ({op.name}) has tensors of unexpected "
                             "number or rank", stage="load") from None
    return total


def op_macs(model: TFLiteModel, op: Operator) -> int:
    """Multiply-accumulates of one operator (conv, depthwise, dense, transpose conv, matmul; else 0)."""
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"):
        return 0
    return _op_macs(model, op)


def _op_macs(model: TFLiteModel, op: Operator) -> int:
    out = model.tensors[op.outputs[0]].shape
    weights = model.tensors[op.inputs[1]].shape
    out_elems = int(np.prod(out)) if out else 0
    if op.name == "CONV_2D":  # weights [out_c, kh, kw, in_c]
        return out_elems * int(np.prod(weights[1:]))
    if op.name == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, out_c]
        return out_elems * int(weights[1] * weights[2])
    if op.name == "FULLY_CONNECTED":  # weights [out, in]
        return out_elems * int(weights[-1])
    if op.name == "TRANSPOSE_CONV":  # inputs: output_shape, weights, input
        return int(np.prod(model.tensors[op.inputs[2]].shape)) * int(np.prod(weights[:3]))
    return out_elems * int(model.tensors[op.inputs[0]].shape[-1])


def layer_name(tensor_name: str) -> str:
    """The Keras layer a converter tensor name comes from (``model/fc1/MatMul`` -> ``fc1``).

    The innermost one: in a nested model ``outer/block/fc_inner/MatMul;...`` names ``fc_inner``, the
    layer that holds the weights, not ``block``, the nested model around it (the one name for the
    report's layer table, the per-layer error and ``--keep-float``). Names without a layer path
    (``StatefulPartitionedCall:0``) are returned whole."""
    parts = tensor_name.split(";")[0].split("/")
    return parts[-2] if len(parts) >= 3 else tensor_name
