"""Exporters per target format: a closed table, one module and one line per format."""

from __future__ import annotations

from . import export_onnx, export_openvino, litert, tflm
from .cbackend.export import export as export_c

EXPORTERS = {
    "tflm": tflm.export,
    "litert": litert.export,
    "openvino": export_openvino.export,
    "onnx": export_onnx.export,
    "c": export_c,
}
