"""Malformed ``.tflite`` files for :func:`edgec.core.tflite_model.parse` (MLPerf Tiny's int8 references, mutated).

``edgec`` reads ``.tflite`` files it wrote (a build folder, checked against its manifest's SHA-256),
so these cases call the parser directly: each must raise one-line InputError, nothing else. Cases
named ``fuzz_*`` reproduce crashes atheris found (tools/fuzz/fuzz_tflite.py) as seeded mutations.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from . import SEED
from .byteops import flip
from .sources import MLPERF

SOURCES = {"kws": MLPERF / "kws_ref_model.tflite", "resnet": MLPERF / "pretrainedResnet_quant.tflite",
           "wakeword": MLPERF / "str_ww_ref_model.tflite"}
TRUNCATIONS = (0, 4, 7, 8, 16, 64, 1000)


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0]


def _patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def _root_vtable_field(data: bytes, field: int, value: int) -> bytes:
    """Overwrite the uoffset stored in the root table's ``field`` (0: version, 1: operator_codes, 2: subgraphs)."""
    root = _u32(data, 0)
    vtable = root - struct.unpack_from("<i", data, root)[0]
    slot = struct.unpack_from("<H", data, vtable + 4 + 2 * field)[0]
    return _patch(data, root + slot, struct.pack("<I", value))


def _edit(edit) -> Callable[[bytes, random.Random], bytes]:
    """A mutation through the flatbuffer object API: unpack, ``edit(model)``, pack again."""
    def mutate(data: bytes, rng: random.Random) -> bytes:
        import flatbuffers

        from edgec.core.tflite_model import schema

        model = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
        edit(model, schema())
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
    return mutate


def _first_op(model, s, names: tuple[str, ...]):
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    wanted = {getattr(s.BuiltinOperator, n) for n in names}
    return next(op for op in model.subgraphs[0].operators if codes[op.opcodeIndex] in wanted)


def _weights_shape_empty(model, s) -> None:
    op = _first_op(model, s, ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    model.subgraphs[0].tensors[op.inputs[1]].shape = []


def _op_input_out_of_range(model, s) -> None:
    model.subgraphs[0].operators[0].inputs[0] = 1_000_000


def _graph_output_out_of_range(model, s) -> None:
    model.subgraphs[0].outputs = [len(model.subgraphs[0].tensors) + 5]


def _opcode_out_of_range(model, s) -> None:
    model.subgraphs[0].operators[0].opcodeIndex = 250


def _no_subgraphs(model, s) -> None:
    model.subgraphs = []


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    **{f"truncate_{n}": (lambda data, rng, n=n: data[:n]) for n in TRUNCATIONS},
    "truncate_half": lambda data, rng: data[:len(data) // 2],
    "truncate_last_byte": lambda data, rng: data[:-1],
    "identifier_wrong": lambda data, rng: _patch(data, 4, b"TFL2"),
    "root_offset_past_end": lambda data, rng: _patch(data, 0, struct.pack("<I", len(data) + 64)),
    "root_offset_into_identifier": lambda data, rng: _patch(data, 0, struct.pack("<I", 4)),
    "subgraphs_offset_past_end": lambda data, rng: _root_vtable_field(data, 2, 0x7FFFFFF0),
    "operator_codes_offset_past_end": lambda data, rng: _root_vtable_field(data, 1, 0x7FFFFFF0),
    "flip_header_bytes": lambda data, rng: flip(data, rng, 0, 64, count=6),
    # atheris (fuzz_tflite, first minute): a tensor name that is not UTF-8 raised UnicodeDecodeError.
    "fuzz_tensor_name_not_utf8": _edit(lambda model, s: setattr(model.subgraphs[0].tensors[0], "name", b"\x8ain")),
    # atheris (fuzz_tflite): a depthwise weights tensor of rank 0 made macs() raise IndexError.
    "fuzz_weights_shape_empty": _edit(_weights_shape_empty),
    "operator_input_out_of_range": _edit(_op_input_out_of_range),
    "graph_output_out_of_range": _edit(_graph_output_out_of_range),
    "opcode_index_out_of_range": _edit(_opcode_out_of_range),
    "no_subgraphs": _edit(_no_subgraphs),
}


def cases() -> list[tuple[str, Callable[[], bytes]]]:
    """(name, make bytes) for every source and mutation."""
    out = []
    for tag, path in SOURCES.items():
        for name, mutate in MUTATIONS.items():
            def make(path=path, mutate=mutate, name=f"tflite_{tag}_{name}"):
                return mutate(path.read_bytes(), random.Random(f"{SEED}:{name}"))
            out.append((f"tflite_{tag}_{name}", make))
    return out
