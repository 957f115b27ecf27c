"""TFLite Micro LUT compression of clustered int8 weights, checked bit-exact in the TFLM interpreter.

After clustering, each output channel of an int8 weight holds only a few distinct values. TFLite
Micro's compression tool (``tflite_micro``'s ``compression`` package) stores such a tensor as
packed indices plus one value table per channel, and a DECODE operator expands it at run time.

What was measured with the pinned ``tflite-micro``: outputs are bit-exact when a tensor is compressed
per channel along its quantized dimension with enough index bits; other settings gave wrong outputs
without any error. So this module only ever uses that setting, picks the index width each tensor
needs, keeps a tensor compressed only if the file gets smaller (measured, since tables, DECODE
operators and flatbuffer padding all cost bytes), and finally runs both models in the TFLM
interpreter and refuses the result (:class:`GateError`) unless every output is bit-identical.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings

import numpy as np

from edgec.core import tflite_model
from edgec.core.errors import GateError, ToolchainError
from edgec.runtimes.tflm import first_difference
from edgec.runtimes.tflm_arena import measure_arena

log = logging.getLogger(__name__)

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MAX_INDEX_BITS = 7  # the DECODE LUT format's bitwidth field; 8 bits would save nothing for int8


def _compression():
    import importlib

    # The package re-exports a function named ``compress`` that shadows the module of that name.
    tool = importlib.import_module("tflite_micro.tensorflow.lite.micro.compression.compress")
    spec = importlib.import_module("tflite_micro.tensorflow.lite.micro.compression.spec")
    return tool, spec


def candidates(model: tflite_model.TFLiteModel) -> list[dict]:
    """Constant int8 weights of weight layers, with the per-channel index width their values need."""
    out, seen = [], set()
    for op in model.operators:
        if op.name not in WEIGHT_OPS or len(op.inputs) < 2:
            continue
        t = model.tensors[op.inputs[1]]
        if t.data is None or t.type != "INT8" or t.index in seen:
            continue
        seen.add(t.index)
        axis = t.quantized_dimension
        moved = np.moveaxis(t.data, axis, 0).reshape(t.shape[axis], -1)
        unique = max(len(np.unique(row)) for row in moved)
        bits = max(1, math.ceil(math.log2(unique)))
        out.append({"tensor": t.index, "name": t.name, "op": op.name, "axis": axis, "bits": bits,
                    "unique_values_max_per_channel": int(unique), "bytes": int(t.data.nbytes)})
    return out


def _build(tflite: bytes, chosen: list[dict]) -> bytes:
    """The model with ``chosen`` tensors LUT-compressed (per channel along the quantized axis)."""
    tool, spec = _compression()
    specs = [spec.Tensor(subgraph=0, tensor=c["tensor"],
                         compression=[spec.LookUpTableCompression(index_bitwidth=c["bits"],
                                                                  mode=spec.PerChannel(axis=c["axis"]))])
             for c in chosen]
    # The tool prints and warns about width choices on stderr; edgec logs its own summary instead.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return bytes(tool.compress(tflite, specs))
        except Exception as e:  # the tool raises CompressionError and assorted errors
            raise ToolchainError(f"TFLite Micro compression failed on {[c['name'] for c in chosen]}: "
                                 f"{type(e).__name__}: {e}", stage="lut") from None


def check_bit_exact(reference: bytes, compressed: bytes, samples: list) -> int:
    """Run both models in the TFLM interpreter; raise :class:`GateError` unless outputs are identical.

    Returns the number of samples compared.
    """
    if not samples:
        raise GateError("LUT compression needs at least one sample to check bit-exactness", stage="lut")
    # run_tflm gives the host arena that DECODE outputs need.
    where = first_difference(reference, compressed, samples, stage="lut",
                             candidate_name="the LUT-compressed model")
    if where is not None:
        raise GateError(f"LUT-compressed model differs from the uncompressed one in the TFLM interpreter "
                        f"({where}); build without LUT compression (lut = false in the recipe)", stage="lut")
    return len(samples)


def _select(tflite_bytes: bytes, cands: list[dict]) -> list[dict]:
    """The candidates that, compressed alone, make the file smaller (measured, not estimated)."""
    base, kept = len(tflite_bytes), []
    for c in cands:
        if c["bits"] > MAX_INDEX_BITS:
            c["kept"], c["reason"] = False, f"{c['unique_values_max_per_channel']} values per channel need 8 bits"
            continue
        # One tensor at a time: tables, a DECODE operator and alignment can outweigh the gain.
        try:
            size = len(_build(tflite_bytes, [c]))
        except ToolchainError as e:  # e.g. a tensor the tool must keep constant: leave it alone
            c["kept"], c["reason"] = False, str(e)
            continue
        c["saved_bytes"] = base - size
        c["kept"] = size < base
        if c["kept"]:
            kept.append(c)
        else:
            c["reason"] = f"file grows by {size - base} B"
    return kept


def _arena(tflite: bytes, model: str = "the LUT-compressed model") -> int:

    return measure_arena(tflite, stage="lut", model=model)["arena_bytes"]


def compress(tflite_bytes: bytes, samples: list, *, arena_budget: int | None = None) -> tuple[bytes, dict]:
    """LUT-compress the weights that get smaller and prove the result bit-exact in TFLM.

    ``samples`` are int8 model inputs (one array per sample, or a list of arrays for several inputs).
    DECODE writes each decompressed weight into the arena, so flash saved costs RAM: the report gives
    the measured arena before and after, and with ``arena_budget`` the largest tensors are left
    uncompressed until the arena fits. Returns the compressed model (the input unchanged when
    nothing pays off) and a report: sizes before/after and, per candidate, index width and whether kept.
    """
    base = len(tflite_bytes)
    cands = candidates(tflite_model.parse(tflite_bytes))
    kept = _select(tflite_bytes, cands)
    arena_before = _arena(tflite_bytes, "the model before LUT compression")
    report = {"bytes_before": base, "bytes_after": base, "arena_bytes_before": arena_before,
              "arena_bytes_after": arena_before, "tensors": cands, "bit_exact_samples": 0}
    out = _build(tflite_bytes, kept) if kept else tflite_bytes
    arena = _arena(out) if kept else arena_before
    while kept and arena_budget is not None and arena > arena_budget:
        drop = max(kept, key=lambda c: c["bytes"])
        kept.remove(drop)
        drop["kept"], drop["reason"] = False, f"its decoded copy needs arena beyond the {arena_budget} B budget"
        out = _build(tflite_bytes, kept) if kept else tflite_bytes
        arena = _arena(out) if kept else arena_before
    if not kept or len(out) >= base:
        for c in kept:
            c["kept"], c["reason"] = False, "together they do not shrink the file"
        log.info("lut: nothing gets smaller; model left uncompressed")
        return tflite_bytes, report
    report.update(bit_exact_samples=check_bit_exact(tflite_bytes, out, samples), bytes_after=len(out),
                  arena_bytes_after=arena)
    log.info("lut: %d of %d weight tensors compressed, %d -> %d bytes (arena %d -> %d), bit-exact on %d samples",
             len(kept), len(cands), base, len(out), arena_before, arena, report["bit_exact_samples"])
    return out, report
