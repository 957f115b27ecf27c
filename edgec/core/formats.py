"""The output formats and what the rest of edgec needs to know about each: the one table.

A target profile names its ``format``; the exporters (``edgec.backends``), verification, bench, the
device harness, the stem choice and ``edgec inspect`` read the format's facts here rather than keep
their own lists. Adding a format is one backend folder plus one row below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """One output format's facts (file names are relative to a build folder)."""

    name: str
    artifact: str  # the file verification runs
    float_reference: str | None  # the float model kept in intermediate/ that bench times against
    bench_runtimes: tuple[str, ...]  # host runtimes that can time the artifact, its own first; () for none
    from_tflite: bool  # built from the int8 .tflite (an ONNX model is lowered to Keras first)
    native_onnx: bool  # its toolchain quantizes an ONNX graph as it is (no Keras lowering)
    float_stem: bool  # its runtime has fast float kernels next to int8 ones (edgec.quantize.stem)
    keep_float: bool  # --keep-float / --max-accuracy-drop apply (mixed float/int8 artifacts)
    in_flash: bool  # the artifact is the whole model in a microcontroller's flash (edgec.quantize.flash_bound)
    int4_weights: bool  # its kernels read packed int4 weights (edgec.compress.int4); others get int8 on the int4 grid
    harness: str | None  # the device harness a target of this format gets by default
    onnx_path: str  # how an ONNX model becomes this artifact (edgec inspect)


# OpenVINO reads the float ONNX directly, so artifact and reference run in the same CPU plugin. Bench
# has no host runtime for generated C, so the c format names no float reference.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("tflm", "model.tflite", "intermediate/model_float.tflite", ("tflm", "litert"),
           from_tflite=True, native_onnx=False, float_stem=False, keep_float=True,
           in_flash=True, int4_weights=True,
           harness=None,
           onnx_path="ONNX -> Keras lowering -> TFLite"),
    Format("litert", "model.tflite", "intermediate/model_float.tflite", ("litert", "tflm"),
           from_tflite=True, native_onnx=False, float_stem=True, keep_float=True,
           in_flash=False, int4_weights=False,
           harness="linux-litert",
           onnx_path="ONNX -> Keras lowering -> TFLite"),
    Format("openvino", "model.xml", "intermediate/model_float.onnx", ("openvino",),
           from_tflite=False, native_onnx=True, float_stem=False, keep_float=True,
           in_flash=False, int4_weights=False,
           harness="openvino",
           onnx_path="native ONNX, no lowering"),
    Format("onnx", "model.onnx", "intermediate/model_float.onnx", ("onnxruntime", "openvino"),
           from_tflite=False, native_onnx=True, float_stem=True, keep_float=True,
           in_flash=False, int4_weights=False,
           harness="onnxruntime",
           onnx_path="native ONNX, no lowering"),
    Format("c", "model.h", None, (),
           from_tflite=True, native_onnx=False, float_stem=False, keep_float=False,
           in_flash=True, int4_weights=True,
           harness=None,
           onnx_path="ONNX -> Keras lowering -> TFLite -> generated C"),
)}

TFLITE_FORMATS = frozenset(n for n, f in FORMATS.items() if f.from_tflite)
NATIVE_ONNX_FORMATS = frozenset(n for n, f in FORMATS.items() if f.native_onnx)
FLOAT_STEM_FORMATS = tuple(n for n, f in FORMATS.items() if f.float_stem)
KEEP_FLOAT_FORMATS = tuple(n for n, f in FORMATS.items() if f.keep_float)
FLASH_FORMATS = tuple(n for n, f in FORMATS.items() if f.in_flash)
INT4_FORMATS = tuple(n for n, f in FORMATS.items() if f.int4_weights)
