"""int4 weights: TFLite's INT4 tensor type (two weights per byte) for chosen layers.

Two halves:

- :func:`project_kernel` / :func:`project_layers` put a Keras layer's float kernel on a symmetric
  per-output-channel 4-bit grid (values ``-7..7``, the step chosen by least squares with clipping), the
  weights the converter then quantizes to int8 *exactly* (its int8 scale is ``max|w| / 127``, and
  ``round(k * 127 / 7)`` maps back to ``k`` without loss). Recovery training keeps projecting (see :func:`projection_callback`).
- :func:`pack` rewrites the converter's int8 ``.tflite``: each chosen CONV_2D, DEPTHWISE_CONV_2D and
  FULLY_CONNECTED weight tensor becomes an ``INT4`` tensor (low nibble first, TFLite's packing) with
  ``scale * max|q| / 7`` per channel, and its int32 bias is re-expressed in the new
  ``input_scale * weight_scale``. TFLite Micro reads the nibbles in its reference kernels
  (``UnpackDenseInt4IntoInt8`` into a scratch buffer of the unpacked weights per layer).

Why not ``ai-edge-quantizer``: it installs beside TensorFlow 2.21 / ai-edge-litert 2.3.0 without
conflicts, but its static W4A8 policy (0.10.0) refuses DEPTHWISE_CONV_2D, and it re-quantizes the
whole model from the float file with its own calibration, so edgec's int8 model (slimming, LUT, the
C backend, the verification against it) would no longer be the converter's. Rewriting the
converter's own file keeps every other tensor byte-identical.
"""

from __future__ import annotations

import logging

import numpy as np

from edgec.core.errors import InputError
from edgec.core.tf import keras
from edgec.core.tflite_model import layer_name, op_name, schema

log = logging.getLogger(__name__)

LEVELS = 7  # symmetric narrow range -7..7: the grid is the same for +w and -w
OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
KERAS_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


CLIP_RATIOS = np.linspace(1.0, 0.5, 26)  # candidate clipping of max|w|; 1.0 first: on-grid weights stay put


def project_kernel(kernel: np.ndarray, layer_class: str = "Conv2D") -> np.ndarray:
    """``kernel`` rounded to a symmetric 4-bit grid per output channel (per tensor for Dense).

    The grid step is ``c * max|w| / 7`` with the clipping ``c`` in [0.5, 1] that minimizes the squared
    error (outliers otherwise stretch the 15 levels over values that almost never occur). The projected
    kernel's largest value is then exactly 7 steps, so the converter's int8 scale (``max / 127``)
    holds it losslessly and :func:`pack` recovers the 4-bit values; projecting twice changes nothing.
    """
    if layer_class == "DepthwiseConv2D":  # [kh, kw, in, mult]: output channels are in x mult
        flat = kernel.reshape(*kernel.shape[:2], -1)
        return project_kernel(flat, "Conv2D").reshape(kernel.shape)
    w = np.asarray(kernel, np.float64)
    # One row per scale: per output channel (last axis), or the whole tensor for Dense, because
    # TFLite Micro refuses per-channel int4 FULLY_CONNECTED weights.
    rows = w.reshape(1, -1) if layer_class == "Dense" else w.reshape(-1, w.shape[-1]).T
    peak = np.abs(rows).max(axis=1, keepdims=True)
    best, best_err = rows.copy(), np.full((rows.shape[0], 1), np.inf)
    for c in CLIP_RATIOS:
        step = np.where(peak > 0, c * peak / LEVELS, 1.0)
        q = np.clip(np.round(rows / step), -LEVELS, LEVELS) * step
        err = np.sum((q - rows) ** 2, axis=1, keepdims=True)
        better = err < best_err
        best, best_err = np.where(better, q, best), np.where(better, err, best_err)
    out = best.reshape(w.shape) if layer_class == "Dense" else best.T.reshape(w.shape)
    return out.astype(kernel.dtype)


def eligible_layers(model) -> list[str]:
    """Names of the Keras layers whose kernel can be stored as int4 (conv, depthwise, dense)."""
    return [layer.name for layer in model.layers if layer.__class__.__name__ in KERAS_LAYERS]


def project_layers(model, names: list[str]) -> None:
    """Put ``names``' kernels (in place) on their 4-bit grid."""
    for name in names:
        layer = model.get_layer(name)
        weights = layer.get_weights()
        weights[0] = project_kernel(weights[0], layer.__class__.__name__)
        layer.set_weights(weights)


def projection_callback(names: list[str]):
    """A Keras callback training ``names`` on their int4 grid with a straight-through estimator.

    Each layer keeps a latent float kernel; the model always holds its projection, so the forward pass
    and the gradient see the int4 weights, and each optimizer step's change is added to the latent
    kernel (re-projecting the stepped weights instead would snap most small steps back)."""
    class _Project(keras().callbacks.Callback):
        def on_train_begin(self, logs=None):
            if getattr(self, "latent", None) is not None:  # a later epoch's fit (augmentation): keep the latent
                return
            self.latent, self.shown = {}, {}
            for name in names:
                kernel = self.model.get_layer(name).weights[0]
                self.latent[name] = kernel.numpy().astype(np.float64)
                self._show(name)

        def _show(self, name):
            layer = self.model.get_layer(name)
            self.shown[name] = project_kernel(self.latent[name], layer.__class__.__name__)
            layer.weights[0].assign(self.shown[name].astype(np.float32))

        def on_train_batch_end(self, batch, logs=None):
            for name in names:
                self.latent[name] += self.model.get_layer(name).weights[0].numpy() - self.shown[name]
                self._show(name)

    return _Project()


def _layer_of(name: str) -> str:
    return layer_name(name)


def pack_nibbles(q: np.ndarray) -> bytes:
    """int4 values (``-8..7``, row-major) packed two per byte, the first in the low nibble (TFLite's order)."""
    flat = np.asarray(q, np.int8).reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.int8)])
    nib = (flat.astype(np.uint8) & 0x0F)
    return bytes((nib[0::2] | (nib[1::2] << 4)).astype(np.uint8))


def pack(tflite: bytes, layers: list[str] | None) -> tuple[bytes, dict]:
    """``tflite`` with the weights of ``layers`` (Keras layer names; None: every eligible op) as INT4.

    Returns the new flatbuffer and a report: per layer the weights, the bytes saved, and the largest
    change of an int8 weight value in units of the new 4-bit step (0 when the Keras weights were
    projected with :func:`project_layers` before conversion: the rewrite is then lossless).
    """
    import flatbuffers

    sch = schema()
    model = sch.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    graph = model.subgraphs[0]
    wanted = None if layers is None else set(layers)
    done: dict[str, dict] = {}
    for op in graph.operators or []:
        kind = op_name(model, op.opcodeIndex)
        if kind not in OPS or len(op.inputs) < 2:
            continue
        w = graph.tensors[op.inputs[1]]
        layer = _layer_of(w.name.decode() if isinstance(w.name, bytes) else str(w.name))
        out_name = graph.tensors[op.outputs[0]].name
        out_layer = _layer_of(out_name.decode() if isinstance(out_name, bytes) else str(out_name))
        name = layer if wanted is None or layer in wanted else out_layer
        if wanted is not None and name not in wanted:
            continue
        buf = model.buffers[w.buffer]
        if w.type != sch.TensorType.INT8 or buf.data is None or not len(buf.data) or w.quantization is None:
            continue
        q8 = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), np.int8).reshape(tuple(w.shape))
        scales = np.asarray(w.quantization.scale, np.float64)
        axis = int(w.quantization.quantizedDimension) if len(scales) > 1 else 0
        # The real weights, one row per output channel (in units of the input scale).
        rows = np.moveaxis(q8.astype(np.float64), axis, 0).reshape(q8.shape[axis] if len(scales) > 1 else 1, -1)
        rows = rows * scales[:, None]
        per_tensor = kind == "FULLY_CONNECTED"
        if per_tensor:
            # TFLite Micro's FULLY_CONNECTED takes int4 weights only with one scale per tensor
            # (fully_connected_common.cc: per-channel quantization is int8/int16 only).
            grid = np.full(rows.shape[0], np.abs(rows).max() / LEVELS)
        else:
            grid = np.abs(rows).max(axis=1) / LEVELS
        grid = np.where(grid > 0, grid, scales.max() if len(scales) else 1.0)
        units = rows / grid[:, None]
        q4 = np.clip(np.round(units), -LEVELS, LEVELS).astype(np.int8)
        error = float(np.max(np.abs(q4 - units))) if units.size else 0.0
        new_scales = grid[:1] if per_tensor else grid
        if len(scales) > 1:
            q4 = np.moveaxis(q4.reshape((q8.shape[axis],) + tuple(np.delete(q8.shape, axis))), 0, axis)
        q4 = q4.reshape(q8.shape)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            _rescale_bias(model, graph, op.inputs[2], scales, new_scales)
        buf.data = np.frombuffer(pack_nibbles(q4), np.uint8)
        w.type = sch.TensorType.INT4
        w.quantization.scale = [float(s) for s in new_scales.astype(np.float32)]
        if per_tensor:
            w.quantization.zeroPoint = [0]
            w.quantization.quantizedDimension = 0
        done[name] = {"op": kind, "weights": int(q8.size), "bytes_saved": int(q8.size - len(buf.data)),
                      "max_rounding_steps": round(error, 4)}
    if wanted is not None and (missing := sorted(wanted - set(done))):
        raise InputError(f"int4 weights: no int8 CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED weights for "
                         f"{', '.join(missing)}", stage="quantize")
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = bytes(builder.Output())
    return out, {"layers": done, "bytes_before": len(tflite), "bytes_after": len(out)}


def _rescale_bias(model, graph, index: int, old_scales: np.ndarray, new_scales: np.ndarray) -> None:
    """Re-express an int32 bias at ``input_scale * new_weight_scale`` (the kernels' accumulator scale)."""
    bias = graph.tensors[index]
    buf = model.buffers[bias.buffer]
    if buf.data is None or not len(buf.data):
        return
    b = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), np.int32).astype(np.float64)
    ratio = old_scales / new_scales  # broadcasts a per-tensor scale (old or new)
    if ratio.size not in (1, b.size):
        raise InputError(f"int4 weights: bias {bias.name!r} has {b.size} values for {ratio.size} scales",
                         stage="quantize")
    buf.data = np.frombuffer(np.round(b * ratio).astype(np.int32).tobytes(), np.uint8)
    q = bias.quantization
    if q is not None and q.scale is not None and len(q.scale):
        # bias scale = input scale * weight scale; the input scale is what the old one was divided by.
        input_scale = float(q.scale[0]) / float(old_scales.reshape(-1)[0])
        q.scale = [float(s) for s in (input_scale * np.asarray(new_scales, np.float64)).astype(np.float32)]
        q.zeroPoint = [0] * len(q.scale)
