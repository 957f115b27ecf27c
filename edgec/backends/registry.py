"""Exporters per target format: a closed table, one module and one line per format.

``ARTIFACT_FILES`` says where each format's files are in a build folder, for the commands that
reopen one (``edgec verify``, ``edgec bench``).
"""

from __future__ import annotations

from typing import NamedTuple

from edgec.backends.onnx import export_onnx
from edgec.backends.openvino import export_openvino
from edgec.backends.litert import export_litert as litert
from edgec.backends.tflm import export_tflm as tflm
from edgec.backends.c.export_c import export as export_c

EXPORTERS = {
    "tflm": tflm.export,
    "litert": litert.export,
    "openvino": export_openvino.export,
    "onnx": export_onnx.export,
    "c": export_c,
}


class ArtifactFiles(NamedTuple):
    """A format's files in a build folder, relative to it."""

    artifact: str  # the file verification runs
    float_reference: str | None  # the float model kept in intermediate/ that bench times against


# OpenVINO reads the float ONNX directly, so artifact and reference run in the same CPU plugin. Bench
# has no host runtime for generated C, so the c format names no float reference.
ARTIFACT_FILES = {
    "tflm": ArtifactFiles("model.tflite", "intermediate/model_float.tflite"),
    "litert": ArtifactFiles("model.tflite", "intermediate/model_float.tflite"),
    "onnx": ArtifactFiles("model.onnx", "intermediate/model_float.onnx"),
    "openvino": ArtifactFiles("model.xml", "intermediate/model_float.onnx"),
    "c": ArtifactFiles("model.h", None),
}
