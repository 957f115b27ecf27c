"""Drop from the shipped TFLite Micro flatbuffer what the interpreter never reads.

Several things the converter writes cost flash on the device and are never read there (the same
reductions as TFLite Micro's own ``tflm_model_transforms`` tool, plus the conv bias parameters):

- the per-channel quantization parameters of CONV_2D and DEPTHWISE_CONV_2D *bias* tensors (a float
  scale and an int64 zero point per output channel, 12 B each). TFLite Micro's int8 and int16
  convolution kernels (reference and CMSIS-NN) compute the requantization from the input, filter and
  output scales (``PopulateConvolutionQuantizationParams``); only the legacy uint8 path checks the bias
  scale. FULLY_CONNECTED does check its bias scale, so its (single) parameters stay;
- per-channel zero points that are all 0 (every int8 weight tensor, 8 B per channel): one 0 is kept.
  TFLite Micro broadcasts a single zero point to all channels since tflite-micro PR #813 (Dec 2021,
  ``micro_allocator.cc``: "as a space-saving optimization, zero point arrays for weights can be
  reduced to a single value"). LiteRT refuses such a file (it wants one zero point per scale), so the
  LiteRT cross-checks run the unslimmed ``intermediate/model_int8.tflite`` (:func:`edgec.runtimes.litert.litert_readable`);
- long tensor names (``model/conv2d_3/BiasAdd;model/conv2d_3/Conv2D;...``): each becomes its Keras
  layer name (``conv2d_3``), which is what reports and debuggers show anyway. Model input and output
  names stay whole (they are the model's interface);
- the signature definitions, the model description and the subgraph name (TFLite Micro reads none of
  them; its own transform tool drops them too). The metadata entries stay.

Because "never read" is a claim about someone else's code, every slimmed model is run in the TFLite
Micro interpreter on held-out samples and shipped only if bit-exact with the unslimmed one.
"""

from __future__ import annotations

import logging

from edgec.core.isolate import NativeCrash
from edgec.core.tflite_model import op_name, layer_name, schema
from edgec.runtimes.tflm import first_difference

log = logging.getLogger(__name__)

_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def slim(tflite: bytes) -> tuple[bytes, dict]:
    """The slimmed flatbuffer and what was removed (bytes of bias parameters, zero points, names)."""
    import flatbuffers

    model = schema().ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    bias_bytes = names_bytes = zero_point_bytes = 0
    signatures = len(model.signatureDefs or [])
    model.signatureDefs = None
    model.description = None
    for graph in model.subgraphs:
        graph.name = None
        keep = set(graph.inputs) | set(graph.outputs)
        for op in graph.operators or []:
            if op_name(model, op.opcodeIndex) not in _CONVS or len(op.inputs) < 3 or op.inputs[2] < 0:
                continue
            bias = graph.tensors[op.inputs[2]]
            # Only constant biases: a LUT-decoded bias is an arena tensor whose parameters DECODE may use.
            buffer = model.buffers[bias.buffer] if bias.buffer < len(model.buffers) else None
            q = bias.quantization
            if buffer is None or buffer.data is None or q is None or q.scale is None:
                continue
            bias_bytes += 12 * len(q.scale)
            bias.quantization = None
        for t in graph.tensors or []:
            q = t.quantization
            if q is not None and q.zeroPoint is not None and len(q.zeroPoint) > 1 and not any(q.zeroPoint):
                zero_point_bytes += 8 * (len(q.zeroPoint) - 1)
                q.zeroPoint = [0]
        for i, t in enumerate(graph.tensors or []):
            if i in keep or t.name is None:
                continue
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            short = layer_name(name)
            names_bytes += len(name) - len(short)
            t.name = short
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = bytes(builder.Output())
    return out, {"bias_quantization_bytes": bias_bytes, "zero_point_bytes": zero_point_bytes,
                 "name_bytes": names_bytes, "signature_defs_removed": signatures,
                 "bytes_before": len(tflite), "bytes_after": len(out)}


def slim_checked(tflite: bytes, samples: list) -> tuple[bytes, dict]:
    """:func:`slim`, kept only when TFLite Micro gives identical outputs on ``samples``; else the input.

    An interpreter crash on either model skips slimming (``skipped`` in the report says why); a model
    that crashes unslimmed fails later, where running it is required (arena, verification).
    """
    slimmed, report = slim(tflite)
    try:
        where = first_difference(tflite, slimmed, samples, stage="slim", candidate_name="the slimmed model"
                                 ) if samples else "no samples to check with"
    except NativeCrash as e:  # slimming is optional: ship the unslimmed model and say why
        log.warning("TFLite Micro slimming skipped: %s", e)
        report.update(applied=False, skipped=str(e), reason=f"crashed: {e}", bit_exact_samples=0,
                      bytes_after=len(tflite))
        return tflite, report
    report["bit_exact_samples"] = 0 if where else len(samples)
    if where is not None or len(slimmed) >= len(tflite):
        log.warning("TFLite Micro slimming not applied (%s)", where or "no smaller")
        report.update(applied=False, reason=where or "not smaller", bytes_after=len(tflite))
        return tflite, report
    report["applied"] = True
    return slimmed, report
