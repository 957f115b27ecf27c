"""Exporters per target format: a closed table, one module and one line per format."""

from __future__ import annotations

from . import litert, tflm

EXPORTERS = {
    "tflm": tflm.export,
    "litert": litert.export,
}
