"""The per-layer table of ``report.json`` (``layers``), measured on the ``.tflite`` that ships.

One row per operator of the shipped model, in execution order: operator, output shape, MACs, the
constant bytes it reads as stored in the file (LUT-compressed weights count their packed indices
and value tables), sparsity and unique values per channel of its weights (from
:mod:`edgec.report.artifact_stats`), and its int8 error as SNR in dB when the per-layer analysis ran
(``--layer-error``, or a failed verification). Nothing is estimated: a value that was not measured
is ``null`` and the section says why.
"""

from __future__ import annotations

import math

from edgec.core import tflite_model
from edgec.core.tflite_model import layer_name
from edgec.report.artifact_stats import decoded_weights, layer_stats
from edgec.report.layer_table_onnx import rows as onnx_rows
from edgec.report.layer_table_openvino import rows as openvino_rows
from edgec.report.layer_time_onnx import attach, kernel_times

_DECODE_OPS = ("TFLM_DECODE", "DECODE")
SNR_NOT_MEASURED = ("not measured: the per-layer int8 analysis runs with --layer-error or when verification "
                    "fails (about 2.3 s more on the digits CNN for a TFLite target)")
TIME_NOT_MEASURED = "not measured: no per-layer latency or cycle count exists for this build"


def _constant_bytes(model: tflite_model.TFLiteModel, op, decoded: dict, counted: set[int]) -> int:
    """Bytes of the constant tensors ``op`` reads, each buffer counted once over the whole model."""
    total = 0
    for idx in op.inputs:
        if idx < 0:
            continue
        sources = [decoded[idx][1], decoded[idx][2]] if idx in decoded else [idx]
        for src in sources:
            t = model.tensors[src]
            if t.data is not None and t.buffer not in counted:
                counted.add(t.buffer)
                total += int(t.data.nbytes)
    return total


def rows(tflite: bytes) -> list[dict]:
    """One row per operator of ``tflite`` (DECODE ops folded into the layer that reads their output)."""
    model = tflite_model.parse(tflite)
    decoded = decoded_weights(model)
    weights = {row["weight"]: row for row in layer_stats(model)}
    counted: set[int] = set()
    out = []
    for op in model.operators:
        if op.name in _DECODE_OPS:
            continue
        output = model.tensors[op.outputs[0]]
        w = model.tensors[op.inputs[1]] if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") \
            and len(op.inputs) > 1 else None
        stats = weights.get(w.name.removesuffix("_decoded")) if w is not None else None
        out.append({
            "index": op.index, "name": layer_name(output.name), "op": op.name,
            "output_shape": [int(d) for d in output.shape],
            "macs": tflite_model.op_macs(model, op),
            "weight_bytes": _constant_bytes(model, op, decoded, counted),
            "sparsity": stats["sparsity"] if stats else None,
            "unique_values_max_per_channel": stats["unique_values_max_per_channel"] if stats else None,
            "lut_compressed": stats["lut_compressed"] if stats else False,
            "int8_snr_db": None,
            "time_share": None,
        })
    return out


def snr_db(noise_to_signal: float | None) -> float | None:
    """SNR in dB from a noise-to-signal amplitude ratio (RMSE / RMS); None when not finite."""
    if noise_to_signal is None or not math.isfinite(noise_to_signal) or noise_to_signal <= 0:
        return None
    return round(-20.0 * math.log10(noise_to_signal), 2)


def section(tflite: bytes | None, layer_error: dict | None, fmt: str, artifact=None, sample=None) -> dict:
    """The ``layers`` section: the rows of the shipped file, and why a column is empty.

    ``tflite``: the shipped ``.tflite`` bytes; else ``artifact``, the path of an ``onnx`` or
    ``openvino`` (``model.xml``) artifact. ``sample`` (one held-out sample, by input name): the ONNX
    artifact is profiled on it in ONNX Runtime for each layer's share of the time.
    """
    if tflite is not None:
        table, source = rows(tflite), "the shipped .tflite"
    elif artifact is not None and fmt == "onnx":

        table, source = onnx_rows(artifact), "the shipped .onnx"
    elif artifact is not None and fmt == "openvino":

        table, source = openvino_rows(artifact), "the shipped OpenVINO IR"
    else:
        return {"rows": [], "note": f"not measured: no artifact file to read for {fmt}"}
    errors = {x["layer"]: x for x in (layer_error or {}).get("layers", [])}
    for row in table:
        found = errors.get(row.get("tensor", row["name"])) or errors.get(row["name"])
        if found is not None:
            row["int8_snr_db"] = snr_db(found.get("noise_to_signal"))
    result = {"source": source, "rows": table, "time_share_note": TIME_NOT_MEASURED}
    if fmt == "onnx" and sample is not None:

        del result["time_share_note"]
        result.update(attach(table, kernel_times(artifact, sample)))
    if errors:
        result["int8_snr_tool"] = layer_error.get("tool")
    else:
        result["int8_snr_note"] = SNR_NOT_MEASURED
    return result
