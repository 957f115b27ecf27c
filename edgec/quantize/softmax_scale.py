"""Keep int8 SOFTMAX / LOG_SOFTMAX input scales within what the TFLite kernels accept.

TFLite Micro's int8 softmax (and LiteRT's reference kernel) turn ``beta * input_scale * 2^26`` into
a fixed-point multiplier with ``QuantizeMultiplierGreaterThanOne``, whose ``TFLITE_CHECK_GT(m, 1)``
calls ``abort()`` when the product is at most 1: an input scale at or below ``2^-26 / beta``
(1.49e-8) kills the process in the interpreter's constructor, with no message. LOG_SOFTMAX does the
same with beta 1. The converter writes such scales when the logits hardly vary over the calibration
samples: an untrained ``keras.applications`` MobileNetV2 or V3 (``weights=None``, 96x96) has logits
within about 2e-6 of each other, so the converter picks a scale near 8e-9 (range / 255).

The fix keeps the converter's zero point and raises only such a scale to ``2^-25 / beta`` (a
multiplier of 2). Every kernel reads the scale from the tensor, so the producer requantizes to it
and the readers dequantize with it: the model stays consistent. Ops that copy int8 values unchanged
(RESHAPE, SQUEEZE, EXPAND_DIMS: MobileNetV3's flatten before the softmax) need the same scale on both
sides, so the change follows them back to the op that really computes the logits. The cost is resolution the softmax
cannot use: a logit step of 3e-8 moves ``exp`` by 3e-8, far below the output's 1/256 step.
"""

from __future__ import annotations

import logging

import numpy as np

from edgec.core.tflite_model import op_name, schema

log = logging.getLogger(__name__)

# Ops whose int8 output is their input's bytes: input and output must keep one scale.
_COPIES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
# The kernels' kScaledDiffIntegerBits (softmax) and kInputIntegerBits (log-softmax) are both 5.
_ABORT_BELOW = 2.0 ** -26
_RAISED_TO = 2.0 ** -25


def raise_tiny_softmax_scales(tflite: bytes) -> tuple[bytes, list[dict]]:
    """The model with every int8 softmax input scale at or below ``2^-26 / beta`` raised to
    ``2^-25 / beta``, and what was changed (tensor, old and new scale); the input itself when nothing is."""
    import flatbuffers

    model = schema().ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    int8 = schema().TensorType.INT8
    changed = []
    for graph in model.subgraphs:
        producer = {out: op for op in graph.operators or [] for out in op.outputs}
        for op in graph.operators or []:
            name = op_name(model, op.opcodeIndex)
            if name not in ("SOFTMAX", "LOG_SOFTMAX") or not len(op.inputs):
                continue
            beta = float(op.builtinOptions.beta) if name == "SOFTMAX" and op.builtinOptions else 1.0
            tensor = graph.tensors[op.inputs[0]]
            q = tensor.quantization
            if tensor.type != int8 or q is None or q.scale is None or len(q.scale) != 1 or beta <= 0:
                continue
            old = float(q.scale[0])
            if beta * old * 2.0 ** 26 > 1.0 and old > 0:
                continue
            new = float(np.float32(_RAISED_TO / beta))
            chain = _copy_chain(model, graph, producer, op.inputs[0])
            for index in chain:
                graph.tensors[index].quantization.scale = [new]
            name_of = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            changed.append({"tensor": name_of, "op": name, "scale_before": old, "scale_after": new,
                            "tensors_changed": len(chain)})
            log.warning("%s input '%s': int8 scale %.3g is below what TFLite's kernels accept (%.3g, they "
                        "abort); raised to %.3g. The logits hardly vary on the calibration samples: is the "
                        "model trained?", name, name_of, old, _ABORT_BELOW / beta, new)
    if not changed:
        return tflite, []
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), changed


def _copy_chain(model, graph, producer: dict, index: int) -> list[int]:
    """``index`` and the tensors it is a plain copy of (back through RESHAPE and the like, same scale)."""
    chain = [index]
    scale = list(graph.tensors[index].quantization.scale)
    while chain[-1] in producer:
        op = producer[chain[-1]]
        source = op.inputs[0] if len(op.inputs) else -1
        q = graph.tensors[source].quantization if source >= 0 else None
        if op_name(model, op.opcodeIndex) not in _COPIES or q is None or q.scale is None or list(q.scale) != scale:
            break
        chain.append(source)
    return chain
