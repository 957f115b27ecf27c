"""Compression facts measured on the final int8 ``.tflite``: sparsity, clusters, where the bytes go.

Everything here reads the bytes that ship (via :mod:`edgec.core.tflite_model`), never the Keras model, so
the report proves that pruning and clustering survived conversion. Weights stored with TFLite Micro's
LUT compression (a DECODE operator in front of the layer) are decoded here from their index and
value tables, so the same numbers come out before and after LUT compression.
"""

from __future__ import annotations

import gzip

import numpy as np

from edgec.core import tflite_model
from edgec.core.tflite_model import layer_name

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_LUT = 0  # DecodeType.LUT in the DECODE common metadata


def gzip_size(raw: bytes) -> int:
    """Size of ``raw`` gzipped at level 9 with a zero timestamp (deterministic)."""
    return len(gzip.compress(raw, compresslevel=9, mtime=0))


def decode_lut(encoded: np.ndarray, ancillary: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Rebuild a LUT-compressed tensor from its packed indices and its DCM + value tables."""
    anc = bytes(np.asarray(ancillary, np.uint8))
    if anc[0] != _LUT:
        raise ValueError(f"DECODE type {anc[0]} is not LUT")
    axis, bits, stride = anc[5] >> 4, anc[5] & 0x07, anc[6]
    tables = np.frombuffer(anc[16:], dtype)
    count = int(np.prod(shape))
    bitstream = np.unpackbits(np.asarray(encoded, np.uint8))[: count * bits].reshape(count, bits)
    indices = bitstream.dot(1 << np.arange(bits - 1, -1, -1)).reshape(shape)  # big-endian fields
    if axis == 0xF:  # one table for the whole tensor
        return tables[:stride][indices]
    moved = np.moveaxis(indices, axis, 0)
    out = np.stack([tables[c * stride:(c + 1) * stride][moved[c]] for c in range(moved.shape[0])])
    return np.moveaxis(out, 0, axis)


def decoded_weights(model: tflite_model.TFLiteModel) -> dict[int, tuple[np.ndarray, int, int]]:
    """Output tensor index of each LUT DECODE op -> (values, encoded tensor, ancillary tensor)."""
    out = {}
    for op in model.operators:
        if op.name not in ("TFLM_DECODE", "DECODE"):
            continue
        for k, dst in enumerate(op.outputs):
            enc, anc = model.tensors[op.inputs[2 * k]], model.tensors[op.inputs[2 * k + 1]]
            t = model.tensors[dst]
            dtype = tflite_model.NUMPY_TYPES[t.type]
            out[dst] = (decode_lut(enc.data, anc.data, t.shape, dtype), enc.index, anc.index)
    return out


def _per_channel_unique(w: np.ndarray, axis: int) -> int:
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    return int(max(len(np.unique(row)) for row in moved))


def layer_stats(model: tflite_model.TFLiteModel) -> list[dict]:
    """Per weight layer: sparsity and the largest number of unique values per output channel.

    The channel axis is the weight tensor's quantized dimension (output channels: axis 0 of CONV_2D
    and FULLY_CONNECTED weights, axis 3 of DEPTHWISE_CONV_2D weights).
    """
    decoded = decoded_weights(model)
    rows = []
    for op in model.operators:
        if op.name not in WEIGHT_OPS or len(op.inputs) < 2:
            continue
        t = model.tensors[op.inputs[1]]
        w = decoded[t.index][0] if t.index in decoded else t.data
        if w is None:
            continue
        axis = t.quantized_dimension if t.scales is not None and len(t.scales) > 1 else (
            3 if op.name == "DEPTHWISE_CONV_2D" else 0)
        weight_name = t.name.removesuffix("_decoded")
        rows.append({
            "name": layer_name(weight_name), "op": op.name, "weight": weight_name, "shape": list(w.shape),
            "sparsity": round(float(np.mean(w == 0)), 6),
            "unique_values_max_per_channel": _per_channel_unique(w, axis),
            "lut_compressed": t.index in decoded,
        })
    return rows


def byte_breakdown(model: tflite_model.TFLiteModel) -> dict[str, int]:
    """Where the bytes of the flatbuffer go: weights, biases, quantization parameters, LUT tables, rest.

    Weights and biases are the constant inputs 1 and 2 of the weight layers (LUT-compressed weights
    count their packed indices); quantization parameters count 4 bytes per scale and 8 per zero
    point as the schema stores them; tables are the DECODE ancillary tensors (header + value tables).
    """
    decoded = decoded_weights(model)
    weights = biases = tables = 0
    counted: set[int] = set()  # buffers, as tensors may share one
    for op in model.operators:
        if op.name not in WEIGHT_OPS:
            continue
        for pos, idx in enumerate(op.inputs[1:3], start=1):
            if idx < 0:
                continue
            t = model.tensors[idx]
            if idx in decoded:
                enc, anc = model.tensors[decoded[idx][1]], model.tensors[decoded[idx][2]]
                if enc.buffer not in counted:
                    weights += enc.data.nbytes
                    counted.add(enc.buffer)
                if anc.buffer not in counted:
                    tables += anc.data.nbytes
                    counted.add(anc.buffer)
            elif t.data is not None and t.buffer not in counted:
                counted.add(t.buffer)
                if pos == 1:
                    weights += len(t.packed) if t.packed is not None else t.data.nbytes
                else:
                    biases += t.data.nbytes
    quant = sum(len(t.scales) * 4 + len(t.zero_points) * 8 for t in model.tensors if t.scales is not None)
    total = len(model.raw)
    return {"total_bytes": total, "weights_bytes": weights, "biases_bytes": biases,
            "quantization_bytes": quant, "lut_tables_bytes": tables,
            "rest_bytes": total - weights - biases - quant - tables}


def stats(tflite: bytes) -> dict:
    """The ``report.json`` "compression" section for one final ``.tflite``."""
    model = tflite_model.parse(tflite)
    return {"layers": layer_stats(model), "raw_bytes": len(tflite), "gzip_bytes": gzip_size(tflite),
            "bytes": byte_breakdown(model)}
