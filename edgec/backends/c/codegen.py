"""Turn a full-integer int8 ``.tflite`` into portable C99: ``model.c``, ``model.h`` and the kernels.

No interpreter and no heap: the operators become a straight sequence of kernel calls on a static
arena laid out by :mod:`.plan`, with weights and requantization parameters as ``const`` arrays.
A model converted with float32 input or output keeps that float boundary: its QUANTIZE and
DEQUANTIZE run in C, and model.h says so (``EDGEC_INPUT_FLOAT``, ``edgec_input_t``).
"""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from pathlib import Path

import numpy as np

from edgec.core.errors import InputError
from edgec.core.tflite_model import parse
from edgec.backends.c import int4, ops
from edgec.backends.c import ops_misc
from edgec.backends.c.plan import plan_memory

log = logging.getLogger(__name__)

OPS = {
    "CONV_2D": lambda e, op: int4.conv_like(e, op, False) if ops.is_int4(e.model, op) else ops.conv_2d(e, op),
    "DEPTHWISE_CONV_2D": lambda e, op: (int4.conv_like(e, op, True) if ops.is_int4(e.model, op)
                                        else ops.depthwise_conv_2d(e, op)),
    "FULLY_CONNECTED": lambda e, op: (int4.fully_connected(e, op) if ops.is_int4(e.model, op)
                                      else ops.fully_connected(e, op)),
    "AVERAGE_POOL_2D": ops.average_pool_2d, "MAX_POOL_2D": ops.max_pool_2d, "ADD": ops.add, "MUL": ops.mul,
    "RESHAPE": ops_misc.reshape, "SQUEEZE": ops_misc.reshape, "EXPAND_DIMS": ops_misc.reshape,
    "SOFTMAX": ops_misc.softmax, "LOGISTIC": ops_misc.logistic, "TANH": ops_misc.tanh,
    "HARD_SWISH": ops_misc.hard_swish, "QUANTIZE": ops_misc.quantize,
    "DEQUANTIZE": ops_misc.dequantize, "RELU": ops_misc.relu, "RELU6": ops_misc.relu6,
    "CONCATENATION": ops_misc.concatenation, "PAD": ops_misc.pad, "PADV2": ops_misc.pad,
    "MEAN": ops_misc.mean,
}

KERNEL_FILES = ("edgec_fixedpoint.h", "edgec_kernels.h", "edgec_dot.c", "edgec_kernels.c",
                "edgec_depthwise3x3.c", "edgec_activations.c")
INT4_FILES = ("edgec_int4.h", "edgec_int4.c")  # shipped only with a model that has int4 weights
_CTYPES = {"INT8": "int8_t", "INT32": "int32_t", "INT4": "uint8_t"}  # INT4: the file's packed nibbles
# (operator, is its output): where a float32 tensor may appear, i.e. the converter's float input
# (QUANTIZE float32 -> int8) and float output (DEQUANTIZE int8 -> float32).
_FLOAT_ENDS = {("QUANTIZE", False), ("DEQUANTIZE", True)}


class Emitter:
    """Collects the constants and kernel calls of ``model.c`` while the operators are visited."""

    def __init__(self, model, plan, prefix: str, *, wide_fc: bool = False, wide_conv: bool = False):
        self.model, self.plan, self.prefix = model, plan, prefix
        self.wide_fc = wide_fc  # FULLY_CONNECTED weights as int16 (ops.pack_fc_weights16)
        # CONV_2D and 3x3 DEPTHWISE_CONV_2D weights as int16 (ops.pack_conv_pairs16, ops.pack_dw3x3)
        self.wide_conv = wide_conv
        self.decls: list[str] = []
        self.body: list[str] = []
        self.weight_bytes = 0
        self._consts: dict[int | tuple[int, str], str] = {}
        self._count = 0

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{self.prefix}_{kind}{self._count}"

    def array(self, ctype: str, values) -> str:
        """Emit a ``static const`` array (a small parameter table) and return its name."""
        name = self._name("p")
        values = np.asarray(values).reshape(-1)
        flat = ", ".join(str(int(v)) for v in values)
        self.decls.append(f"static const {ctype} {name}[] = {{{flat}}};")
        self.weight_bytes += values.size * (1 if ctype == "int8_t" else 4)
        return name

    def struct(self, ctype: str, fields) -> str:
        """Emit a ``static const`` parameter struct initialized from (nested) integer lists."""
        def init(v):
            return "{" + ", ".join(init(x) for x in v) + "}" if isinstance(v, (list, tuple)) else str(int(v))
        name = self._name("p")
        self.decls.append(f"static const {ctype} {name} = {init(fields)};")
        return name

    def const(self, index: int, *, pack=None, tag: str = "") -> str:
        """The C array holding a constant tensor (weights, biases, constant operands); with
        ``pack``, the tensor's data reordered by ``pack(data)`` for a kernel (one array per ``tag``)."""
        key = (index, tag) if pack else index
        if key not in self._consts:
            t = self.model.tensors[index]
            if t.type not in _CTYPES:
                raise InputError(f"constant tensor '{t.name}' of type {t.type} has no C form; "
                                 "use the tflm format for this model", stage="export")
            if t.type == "INT4":  # the file's packed nibbles, read as they are by edgec_int4.c
                data = np.frombuffer(t.packed, np.uint8)
            else:
                data = np.asarray(pack(np.asarray(t.data)) if pack else t.data).reshape(-1)
            ctype = "int16_t" if data.dtype == np.int16 else _CTYPES[t.type]  # widened by `pack`
            name = self._name("w")
            rows = [", ".join(str(int(v)) for v in data[i:i + 24]) for i in range(0, data.size, 24)]
            body = ",\n  ".join(rows) if rows else "0"
            self.decls.append(f"/* {t.name} {list(t.shape)}{', packed for ' + tag if pack else ''} */\n"
                              f"static const {ctype} {name}[{max(data.size, 1)}] = {{\n  {body}}};")
            self.weight_bytes += data.nbytes
            self._consts[key] = name
        return self._consts[key]

    def ptr(self, index: int) -> str:
        """A C expression for the address of tensor ``index``."""
        t = self.model.tensors[index]
        if t.is_constant:
            return self.const(index)
        b = self.plan.buffer(index)
        if b.where == "input":
            return "input"
        if b.where == "output":
            return "output"
        if t.type == "FLOAT32":  # the arena is bytes; float buffers are 8-byte aligned in it
            return f"((float *)({self.prefix}_arena + {b.offset}))"
        return f"({self.prefix}_arena + {b.offset})"

    def call(self, line: str) -> None:
        """Append one statement to the body of the invoke function."""
        self.body.append("  " + line)


def _validate(model) -> None:
    if model.subgraphs != 1:
        raise InputError(f"the C backend takes single-subgraph models, this one has {model.subgraphs}; "
                         "use the tflm format", stage="export")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"the C backend takes one input and one output, got {len(model.inputs)} and "
                         f"{len(model.outputs)}; use the tflm format", stage="export")
    for op in model.operators:
        if op.name not in OPS:
            raise InputError(f"operator {op.name} (op #{op.index}) has no C kernel; "
                             "use the tflm format for this model", stage="export")
    for op in model.operators:
        activations = [i for i in op.inputs if i >= 0 and not model.tensors[i].is_constant]
        for i in dict.fromkeys([*op.inputs[:1], *activations, *op.outputs]):
            _check_tensor(op, model.tensors[i], is_output=i in op.outputs)


def _check_tensor(op, t, *, is_output: bool) -> None:
    if any(int(d) < 0 for d in t.shape):
        raise InputError(f"tensor '{t.name}' has a dynamic shape {t.shape}; fix the batch "
                         "size to 1", stage="export")
    if t.type == "FLOAT32" and (op.name, is_output) in _FLOAT_ENDS:
        return
    if t.type != "INT8" or t.scales is None:
        raise InputError(f"operator {op.name} (op #{op.index}): tensor '{t.name}' is {t.type}; the C "
                         "backend needs a full-integer int8 model (float32 only into a QUANTIZE or "
                         "out of a DEQUANTIZE); use the tflm format for this model", stage="export")


def _io_lines(up: str, kind: str, t) -> list[str]:
    """The macros and element type of the model's input or output tensor."""
    is_float = t.type == "FLOAT32"
    lines = [f"#define {up}_{kind}_FLOAT {int(is_float)}",
             f"#define {up}_{kind}_ELEMENTS {ops.nelem(t)}",
             f"#define {up}_{kind}_BYTES {ops.nelem(t) * (4 if is_float else 1)}",
             f"#define {up}_{kind}_RANK {len(t.shape)}",
             f"#define {up}_{kind}_SHAPE {{{', '.join(str(int(d)) for d in t.shape)}}}"]
    if not is_float:  # a float tensor is the caller's real values: nothing to (de)quantize
        lines += [f"#define {up}_{kind}_SCALE {float(t.scales[0]):.9g}f",
                  f"#define {up}_{kind}_ZERO_POINT ({int(t.zero_points[0])})"]
    return lines


def _signature(model, prefix: str) -> str:
    """``int <prefix>_invoke(...)``: the int8 contract spelled as before when both ends are int8."""
    if all(model.tensors[i].type == "INT8" for i in (model.inputs[0], model.outputs[0])):
        return f"int {prefix}_invoke(const int8_t *input, int8_t *output)"
    return f"int {prefix}_invoke(const {prefix}_input_t *input, {prefix}_output_t *output)"


def _header(model, plan, prefix: str, weight_bytes: int, macs: int) -> str:
    up = prefix.upper()
    lines = ["/* Generated by edgec: int8 model as C99, no interpreter, no heap. */",
             f"#ifndef {up}_MODEL_H", f"#define {up}_MODEL_H", "", "#include <stdint.h>", ""]
    ctypes = []
    for kind, index in (("INPUT", model.inputs[0]), ("OUTPUT", model.outputs[0])):
        t = model.tensors[index]
        lines += _io_lines(up, kind, t)
        ctypes.append("float" if t.type == "FLOAT32" else "int8_t")
    lines += [f"#define {up}_ARENA_BYTES {plan.arena_bytes}", f"#define {up}_WEIGHT_BYTES {weight_bytes}",
              f"#define {up}_MACS {macs}", "",
              "/* Element types of the input and output buffers (float32: real values, quantized",
              "   inside the model; int8: quantized with the scales and zero points above). */",
              f"typedef {ctypes[0]} {prefix}_input_t;", f"typedef {ctypes[1]} {prefix}_output_t;", "",
              "/* Runs the model on buffers of the sizes above. Returns 0. */",
              f"{_signature(model, prefix)};", "", "#endif", ""]
    return "\n".join(lines)


def _source(emitter: Emitter, prefix: str, int4: bool) -> str:
    up = prefix.upper()
    arena = (f"/* One static arena; int32 storage keeps it word aligned. */\n"
             f"static int32_t {prefix}_arena_words[({up}_ARENA_BYTES + 3) / 4 + 1];\n"
             f"#define {prefix}_arena ((int8_t *){prefix}_arena_words)\n")
    return "\n".join([
        "/* Generated by edgec: int8 model as C99, no interpreter, no heap. */",
        '#include "model.h"', '#include "edgec_kernels.h"', *(['#include "edgec_int4.h"'] if int4 else []), "", arena,
        *emitter.decls, "",
        f"int {prefix}_invoke(const {prefix}_input_t *input, {prefix}_output_t *output) {{",
        f"  (void){prefix}_arena_words;  /* a model may need no arena at all */", *emitter.body,
        "  return 0;", "}", ""])


def _weight_bytes(model, name: str) -> int:
    """Bytes of the int8 constant weights of the model's ``name`` operators."""
    return sum(np.asarray(model.tensors[op.inputs[1]].data).nbytes for op in model.operators
               if op.name == name and len(op.inputs) > 1
               and model.tensors[op.inputs[1]].type == "INT8" and model.tensors[op.inputs[1]].data is not None)


def _consts_bytes(model) -> int:
    return sum(np.asarray(t.data).nbytes for t in model.tensors if t.is_constant and t.data is not None)


def wide_fc_fits(model, flash_bytes: int | None) -> bool:
    """Whether FULLY_CONNECTED weights may be widened to int16 (ops.pack_fc_weights16, about 20%
    fewer cycles in the fully-connected loop): when a flash budget is known and all the model's
    constants, with the fully-connected weights counted twice, take at most 3/4 of it (the rest
    is left for code)."""
    if flash_bytes is None:
        return False
    fc = _weight_bytes(model, "FULLY_CONNECTED")
    return fc > 0 and 4 * (_consts_bytes(model) + fc) <= 3 * flash_bytes


# Cores whose build runs edgec_conv_s8_w16's four-pixel DSP kernel; the M55 takes the MVE path of
# the int8 layout (its build would run int16 weights through the portable loop).
WIDE_CONV_CORES = ("cortex-m4", "cortex-m7", "cortex-m33")


def wide_conv_fits(model, flash_bytes: int | None, core: str | None) -> bool:
    """Whether CONV_2D and DEPTHWISE_CONV_2D weights may be widened to int16 (ops.pack_conv_pairs16:
    four pixels per weight load, about 20% fewer cycles per MAC on the Cortex-M4 than two with int8
    weights; ops.pack_dw3x3: tap pairs for SMLAD, 40 bytes a 3x3 channel instead of 9 and its bias):
    for a DSP core of :data:`WIDE_CONV_CORES` with a known flash budget, when all the model's
    constants, the convolution and fully-connected weights counted twice and the depthwise ones
    the 3x3 kernel takes (:func:`ops.dw3x3_fits`) five times, take at most 3/4 of it."""
    if flash_bytes is None or core not in WIDE_CONV_CORES:
        return False
    conv, fc = _weight_bytes(model, "CONV_2D"), _weight_bytes(model, "FULLY_CONNECTED")
    dw = sum(np.asarray(model.tensors[op.inputs[1]].data).nbytes for op in model.operators
             if op.name == "DEPTHWISE_CONV_2D" and not ops.is_int4(model, op) and ops.dw3x3_fits(model, op))
    return conv + dw > 0 and 4 * (_consts_bytes(model) + conv + fc + 4 * dw) <= 3 * flash_bytes


def generate(tflite_bytes: bytes, out_dir: Path, *, prefix: str = "edgec",
             flash_bytes: int | None = None, core: str | None = None) -> dict:
    """Write ``model.c``, ``model.h`` and the kernel sources for an int8 model into ``out_dir``.

    ``flash_bytes``: the target's flash budget, when known; with room to spare the fully-connected
    weights are stored as int16 for a faster loop (:func:`wide_fc_fits`), and for a DSP ``core``
    (``"cortex-m4"``...) the convolution weights too (:func:`wide_conv_fits`).

    Returns ``{"arena_bytes", "weight_bytes", "ops", "macs", "input_type", "output_type", "files"}``
    (types ``"int8"`` or ``"float32"``, the latter for a model converted with float input or
    output); ``weight_bytes`` counts all constant arrays (weights, folded biases, multipliers and
    shifts). An operator or tensor type without a C kernel is an
    :class:`~edgec.core.errors.InputError` naming it; nothing is written then.
    """
    if not prefix.isidentifier():
        raise InputError(f"C prefix {prefix!r} is not a C identifier", stage="export")
    model = parse(tflite_bytes)
    _validate(model)
    wide_conv = wide_conv_fits(model, flash_bytes, core)
    plan = plan_memory(model, scratch_bytes=lambda op, in_place: ops.scratch_bytes(model, op, in_place,
                                                                                    wide=wide_conv),
                       row_in_place=lambda op: ops.row_in_place(model, op))
    emitter = Emitter(model, plan, prefix, wide_fc=wide_fc_fits(model, flash_bytes), wide_conv=wide_conv)
    macs = 0
    for op in model.operators:
        emitter.call(f"/* op {op.index}: {op.name} */")
        macs += OPS[op.name](emitter, op)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.h").write_text(_header(model, plan, prefix, emitter.weight_bytes, macs))
    has_int4 = any(t.type == "INT4" for t in model.tensors)
    files = (*KERNEL_FILES, *(INT4_FILES if has_int4 else ()))
    (out_dir / "model.c").write_text(_source(emitter, prefix, has_int4))
    runtime = resources.files("edgec.backends.c") / "runtime"
    for name in files:
        with resources.as_file(runtime / name) as src:
            shutil.copyfile(src, out_dir / name)
    log.info("C backend: %d ops, arena %d B, weights %d B, %d MACs", len(model.operators),
             plan.arena_bytes, emitter.weight_bytes, macs)
    io_types = [model.tensors[i].type.lower() for i in (model.inputs[0], model.outputs[0])]
    return {"arena_bytes": plan.arena_bytes, "weight_bytes": emitter.weight_bytes,
            "int16_weights": [kind for kind, on in (("conv", wide_conv), ("fc", emitter.wide_fc)) if on],
            "ops": [op.name for op in model.operators], "macs": macs,
            "input_type": io_types[0], "output_type": io_types[1],
            "files": ["model.c", "model.h", *files]}
