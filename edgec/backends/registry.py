"""Exporters per target format: a closed table, one module and one line per format.

The formats' other facts (artifact file names, runtimes, ...) are in :mod:`edgec.core.formats`.
"""

from __future__ import annotations

from edgec.backends.c.export_c import export as export_c
from edgec.backends.litert import export_litert as litert
from edgec.backends.onnx import export_onnx
from edgec.backends.openvino import export_openvino
from edgec.backends.tflm import export_tflm as tflm

EXPORTERS = {
    "tflm": tflm.export,
    "litert": litert.export,
    "openvino": export_openvino.export,
    "onnx": export_onnx.export,
    "c": export_c,
}
