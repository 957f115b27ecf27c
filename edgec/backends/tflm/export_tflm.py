"""The TFLite Micro artifact: aligned ``.tflite``, C array, op resolver, measured arena, budgets.

Writes into the target folder:

- ``model.tflite``: the int8 model (LUT-compressed when clustered, slimmed by :mod:`edgec.backends.tflm.slim`)
  re-serialized by TFLite Micro's flatbuffer aligner so that every constant buffer starts on a
  16-byte boundary (kernels read weights in place from flash);
- ``model_data.cc`` / ``model_data.h``: the same bytes as an ``alignas(16)`` const array, its length,
  and the arena size to reserve;
- ``op_resolver.h``: a ``MicroMutableOpResolver<N>`` registering exactly the model's operators;

and checks the model against the target's flash and RAM budgets.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path


from edgec.backends.tflm.slim import slim_checked
from edgec.compress.lut import check_bit_exact, compress
from edgec.core.errors import InputError, ToolchainError
from edgec.core.isolate import NativeCrash, call
from edgec.core.targets import check_budget, model_budget
from edgec.core.tflite_model import parse, schema
from edgec.core.version import __version__
from edgec.runtimes.base import quantize_samples
from edgec.runtimes.litert import litert_readable
from edgec.runtimes.tflm_arena import measure_arena

log = logging.getLogger(__name__)

STAGE = "export"
ALIGNMENT = 16
# Held-out samples every rewrite of the .tflite (LUT compression, slimming, alignment) must reproduce
# bit for bit in TFLite Micro: each is an interpreter run per candidate, so a few dozen.
BIT_EXACT_SAMPLES = 50

# Builtin op name -> MicroMutableOpResolver method suffix, where CamelCase of the name is not it.
_RESOLVER_EXCEPTIONS = {"BATCH_MATMUL": "BatchMatMul", "PADV2": "PadV2", "TFLM_DECODE": "Decode"}


def resolver_method(op: str) -> str:
    """``CONV_2D`` -> ``AddConv2D``: the MicroMutableOpResolver call that registers ``op``."""
    # Parts that start with a digit keep their case: CONV_2D -> Conv2D; RELU6 -> Relu6.
    name = _RESOLVER_EXCEPTIONS.get(op) or "".join(
        p if p[0].isdigit() else p.capitalize() for p in op.split("_"))
    return f"Add{name}"


def align(tflite: bytes) -> bytes:
    """Re-serialize with TFLite Micro's aligner so constant buffers are 16-byte aligned."""
    out = call(_align, tflite, stage=STAGE, what="TFLite Micro's flatbuffer aligner")
    misaligned = [i for i, off in buffer_offsets(out) if off % ALIGNMENT]
    if misaligned:
        raise ToolchainError(f"flatbuffer aligner left buffers {misaligned[:5]} unaligned", stage=STAGE)
    return out


def _align(tflite: bytes) -> bytes:
    """The aligner itself (C++), run in edgec's worker process."""
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper as aligner

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.tflite"), Path(tmp, "out.tflite")
        src.write_bytes(tflite)
        aligner.align_tflite_model(str(src), str(dst))
        return dst.read_bytes()


def buffer_offsets(tflite: bytes) -> list[tuple[int, int]]:
    """(buffer index, byte offset of its data in the file) for every non-empty buffer."""
    model = schema().Model.GetRootAs(tflite, 0)
    offsets = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            offsets.append((i, buf._tab.Vector(buf._tab.Offset(4))))
    return offsets


def check_operators(tflite: bytes, allowed: list[str], target_id: str) -> list[str]:
    """The model's operators; any not in the target's ``allowed`` list is an :class:`InputError`."""
    ops = parse(tflite).op_names()
    missing = [op for op in ops if op not in allowed]
    if missing:
        raise InputError(f"operators {', '.join(missing)} are not available on this target; remove the "
                         "layers that produce them or choose another target", stage=STAGE, target=target_id)
    return ops


def io_comment(tflite: bytes) -> str:
    """C comment lines naming each input and output: type, shape, scale and zero point.

    The application writes inputs and reads outputs in these types; a model shipped with int16
    activations by ``--max-accuracy-drop`` has int16 I/O although the target says int8.
    """
    model = parse(tflite)
    lines = []
    for kind, indices in (("Input", model.inputs), ("Output", model.outputs)):
        for k, i in enumerate(indices):
            t = model.tensors[i]
            quant = ""
            if t.scales is not None and len(t.scales):
                quant = f", scale {float(t.scales[0]):.9g}, zero point {int(t.zero_points[0])}"
            shape = ",".join(str(d) for d in t.shape)
            lines.append(f"// {kind} {k} '{t.name}': {t.type.lower()}[{shape}]{quant}")
    return "\n".join(lines)


def render_model_data(tflite: bytes, *, arena_bytes: int, arena_note: str, name: str = "g_model_data",
                      io: str = "", tflm_only: str | None = None) -> tuple[str, str]:
    """Return (model_data.h, model_data.cc) for the aligned model bytes (``io``: :func:`io_comment`;
    ``tflm_only``: why LiteRT cannot read the model, from :func:`edgec.runtimes.litert.litert_readable`)."""
    only = (f"// For TFLite Micro only (LiteRT cannot read {tflm_only}); intermediate/model_int8.tflite is\n"
            "// the same arithmetic for LiteRT (bit-exact with this model in TFLite Micro).\n") if tflm_only else ""
    header = f"""// Generated by edgec {__version__}. Do not edit.
#ifndef EDGEC_MODEL_DATA_H_
#define EDGEC_MODEL_DATA_H_

#include <cstddef>

// The quantized model, 16-byte aligned so TFLite Micro reads weights in place.
{only}{io + chr(10) if io else ""}extern const unsigned char {name}[];
extern const unsigned int {name}_len;

// Bytes to reserve for the tensor arena: {arena_note}
constexpr size_t kTensorArenaSize = {arena_bytes};

#endif  // EDGEC_MODEL_DATA_H_
"""
    rows = []
    for i in range(0, len(tflite), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in tflite[i:i + 12]) + ",")
    body = "\n".join(rows)
    source = f"""// Generated by edgec {__version__}. Do not edit.
#include "model_data.h"

alignas({ALIGNMENT}) const unsigned char {name}[] = {{
{body}
}};
const unsigned int {name}_len = {len(tflite)};
"""
    return header, source


def render_op_resolver(ops: list[str]) -> str:
    """``op_resolver.h`` with a ``MicroMutableOpResolver<N>`` registering exactly ``ops``."""
    calls = "\n".join(f"  TF_LITE_ENSURE_STATUS(resolver.{resolver_method(op)}());" for op in ops)
    return f"""// Generated by edgec {__version__}: registers exactly the operators of the model.
#ifndef EDGEC_OP_RESOLVER_H_
#define EDGEC_OP_RESOLVER_H_

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace edgec {{

constexpr int kNumOps = {len(ops)};
using OpResolver = tflite::MicroMutableOpResolver<kNumOps>;

// Operators: {", ".join(ops)}
inline TfLiteStatus RegisterOps(OpResolver& resolver) {{
{calls}
  return kTfLiteOk;
}}

}}  // namespace edgec

#endif  // EDGEC_OP_RESOLVER_H_
"""


def arena_reserve(measured: int, profile: dict) -> tuple[int, str]:
    """The arena to reserve on the device (bytes, 16-aligned) and a sentence saying how it was set."""
    mem = profile.get("memory", {})
    fraction = float(mem.get("arena_margin_fraction", 0.0))
    extra = int(mem.get("arena_margin_bytes", 0))
    reserve = math.ceil((measured * (1 + fraction) + extra) / ALIGNMENT) * ALIGNMENT
    note = (f"{measured} B measured in the TFLite Micro interpreter on a 64-bit host, plus "
            f"{fraction:.0%} and {extra} B for 32-bit targets and optimized-kernel scratch buffers")
    return reserve, note


def int8_samples(tflite: bytes, dataset, limit: int = BIT_EXACT_SAMPLES) -> list:
    """Up to ``limit`` samples of ``dataset`` quantized to the model's input type, one (1, ...) array each."""
    return quantize_samples(tflite, dataset.subset(range(min(limit, len(dataset)))).arrays())


def lut_compress(build, tflite: bytes, samples: list) -> bytes:
    """Store clustered weights as TFLite Micro LUTs (DECODE) where it shrinks the file and the arena fits."""
    mem = build.target.get("memory", {})
    _, ram_budget = model_budget(build.target)
    arena_budget = None
    if ram_budget is not None:  # the decoded weights live in the arena; leave room for the margin
        arena_budget = int((ram_budget - mem.get("arena_margin_bytes", 0)) / (1 + mem.get("arena_margin_fraction", 0)))
    try:
        compressed, report = compress(tflite, samples, arena_budget=arena_budget)
    except NativeCrash as e:  # LUT compression is optional: ship the model uncompressed and say why
        log.warning("%s: LUT compression skipped: %s", build.target["id"], e)
        build.report["compression"]["lut"] = {"skipped": str(e), "bytes_before": len(tflite),
                                              "bytes_after": len(tflite)}
        return tflite
    build.report["compression"]["lut"] = report
    return compressed


def export(build) -> None:
    """TFLite Micro exporter: write the artifacts, measure the arena, check the budgets."""
    if build.int8_tflite is None:
        raise ToolchainError("no int8 model to export", stage=STAGE, target=build.target["id"])

    model = build.int8_tflite
    # Before anything runs it in TFLite Micro: an operator the target lacks is a refusal, not a failure
    # to allocate tensors in slimming (an LRN with a beta outside quarters lowers to LOG and EXP).
    check_operators(model, build.target.get("operators", {}).get("allowed", []), build.target["id"])
    samples = int8_samples(model, build.evaluation)
    if (build.settings.get("clusters") or build.settings.get("cluster_bits")) and build.settings.get("lut", True):
        model = lut_compress(build, model, samples)
    model, build.report["compression"]["slim"] = slim_checked(model, samples)
    tflite = align(model)
    if tflite is not model and "lut" in build.report["compression"]:

        check_bit_exact(build.int8_tflite, tflite, samples)
    ops = check_operators(tflite, build.target.get("operators", {}).get("allowed", []), build.target["id"])
    arena = measure_arena(tflite, stage=STAGE, model="the shipped model")
    reserve, note = arena_reserve(arena["arena_bytes"], build.target)
    header, source = render_model_data(tflite, arena_bytes=reserve, arena_note=note, io=io_comment(tflite),
                                       tflm_only=litert_readable(tflite))
    (build.out / "model.tflite").write_bytes(tflite)
    (build.out / "model_data.h").write_text(header)
    (build.out / "model_data.cc").write_text(source)
    (build.out / "op_resolver.h").write_text(render_op_resolver(ops))
    build.artifact = build.out / "model.tflite"
    build.final_tflite = tflite
    flash_budget, ram_budget = model_budget(build.target)
    build.report["memory"] = {
        "arena_bytes": reserve,
        "arena_measured_host_bytes": arena["arena_bytes"],
        "arena_head_bytes": arena.get("head_bytes"),
        "arena_tail_bytes": arena.get("tail_bytes"),
        "arena_note": note,
        "flash_budget_bytes": flash_budget,
        "ram_budget_bytes": ram_budget,
    }
    build.report["operators"] = ops
    build.report["size"]["artifact_bytes"] = len(tflite)
    build.report["size"]["flash_bytes"] = len(tflite)
    check_budget(flash_bytes=len(tflite), ram_bytes=reserve, profile=build.target)
