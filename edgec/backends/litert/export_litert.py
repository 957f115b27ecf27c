"""The phone / edge-Linux artifact: ``model.tflite`` for LiteRT (int8 as quantized)."""

from __future__ import annotations

from edgec.core.errors import ToolchainError
from edgec.quantize.converter import fp16_tflite


def export(build) -> None:
    """Write ``model.tflite`` (the int8 model) for LiteRT."""
    if build.int8_tflite is None:
        raise ToolchainError("no int8 model to export", stage="export", target=build.target["id"])
    path = build.out / "model.tflite"
    path.write_bytes(build.int8_tflite)
    build.artifact = path
    build.final_tflite = build.int8_tflite
    build.report["size"]["artifact_bytes"] = len(build.int8_tflite)
    build.report["size"]["flash_bytes"] = len(build.int8_tflite)
    if build.target.get("device", {}).get("gpu_delegate"):
        # GPU delegates compute in fp16: ship the fp16-weight variant beside the int8 model.

        fp16 = fp16_tflite(build.keras_model)
        (build.out / "model_fp16.tflite").write_bytes(fp16)
        build.report["size"]["fp16_bytes"] = len(fp16)
