"""Float stem: the convolutions that read the model input, left in float when that runs faster.

A first convolution over an RGB image has a reduction length of 3x3x3 = 27. The int8 GEMM kernels
of XNNPACK and ONNX Runtime (MLAS) pad that to their block size and lose most of their advantage,
while both runtimes have direct float kernels for few-channel inputs. Measured on the MLPerf Tiny
ResNet-8 (x86 AVX512-VNNI, 1 thread): ONNX Runtime's int8 stem takes 31 us against 13 us in
float; keeping it float takes the whole model's int8 speedup from 1.49x to 1.61x in ONNX Runtime
and from 1.49x to 1.78x in LiteRT (the digits example's 1-channel stem: 1.07x faster in ONNX
Runtime, no change in LiteRT). One layer less is quantized, and the stem's weights are few (432
floats in ResNet-8).

The setting (``--stem``, else the target's ``quantization.stem``: ``QuantSpec.stem``) is ``int8``
(default), ``float``, or ``auto``: float when every stem convolution reads at most ``FEW_CHANNELS``
channels (images, single-channel spectrograms), where the measurements above show the loss.
``auto`` is a rule, not a timing taken during the build, so that the same inputs always give the same artifact; time your own
model with ``edgec bench`` (or on the device with the harness) to check it. ``onnx-cpu`` uses ``auto``;
phone and board targets default to ``int8`` (their ARM kernels were not measured here).
Microcontroller formats stay all-int8: TFLite Micro's float convolution is far slower than its
int8 one, and the C backend has int8 kernels only.
"""

from __future__ import annotations

from typing import Any

from edgec.core.tflite_model import parse

FEW_CHANNELS = 4  # auto: a stem reading at most this many channels runs faster in float
_TFLITE_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_ONNX_LAYOUT_OPS = ("Transpose", "Reshape", "Identity")  # tf2onnx puts an NHWC->NCHW Transpose first


def tflite_stem(float_tflite: bytes) -> dict[str, int]:
    """Convolutions that read a model input in a float ``.tflite``: output tensor name -> input channels.

    Those names are what the TFLite quantizer's ``denylisted_nodes`` match.
    """
    model = parse(float_tflite)
    inputs = set(model.inputs)
    return {model.tensors[op.outputs[0]].name: model.tensors[op.inputs[0]].shape[-1] for op in model.operators
            if op.name in _TFLITE_CONVS and op.inputs[0] in inputs}


def onnx_stem(model: Any) -> dict[str, int]:
    """Conv nodes that read a graph input, directly or through layout-only ops: name -> input channels."""
    graph = model.graph
    weights = {t.name: list(t.dims) for t in graph.initializer}
    reach = {i.name for i in graph.input if i.name not in weights}
    stem = {}
    for node in graph.node:  # ONNX graphs are topologically sorted
        if not node.input or node.input[0] not in reach:
            continue
        if node.op_type in _ONNX_LAYOUT_OPS:
            reach.update(node.output)
        elif node.op_type == "Conv" and len(weights.get(node.input[1], [])) == 4:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            stem[node.name] = weights[node.input[1]][1] * group  # W is (M, C/group, kh, kw)
    return stem


def choose(value: str, stem: dict[str, int]) -> tuple[list[str], dict]:
    """The layers to leave in float for setting ``value``, and the report's ``stem`` section."""
    few = bool(stem) and max(stem.values()) <= FEW_CHANNELS
    chosen = "float" if stem and (value == "float" or (value == "auto" and few)) else "int8"
    section = {"setting": value, "layers": list(stem), "input_channels": list(stem.values()), "chosen": chosen}
    if value == "auto":
        section["rule"] = f"float when every stem convolution reads <= {FEW_CHANNELS} channels"
    return (list(stem) if chosen == "float" else []), section
