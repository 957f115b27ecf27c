"""Per-layer int8 error of a TFLite build, and keeping the worst layers in float.

TFLite's ``QuantizationDebugger`` builds a debug model in which every quantized op is followed by a
``NumericVerify`` op that runs the float op on the same (dequantized) inputs, so each layer's error
is its own and not the sum of everything upstream. From it we read, per layer:

- ``rmse`` and ``rmse_over_scale``: TF's own metric (RMSE in units of the output's quantization
  step; about 0.29 is pure rounding, well above 0.7 means the layer is suspicious).
- ``noise_to_signal``: RMSE of each output channel divided by that channel's RMS, averaged over the
  channels that carry signal. This is the one we rank by. A per-tensor int8 scale stretched by one
  outlier channel rounds every other channel to zero; ``rmse_over_scale`` stays near 0.29 for such
  a layer (the error is "just rounding", at a huge step) while ``noise_to_signal`` goes above 1.

Keeping a layer in float means its output tensor is never quantized: the layer *and* the ops that
consume its output are left out of int8 (``denylisted_nodes`` of ``mlir_quantize``, addressed by
output tensor name). Leaving out only the producer would still re-quantize the tensor at the
consumer with the same outlier-stretched scale and fix nothing.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgec.core.errors import EdgecError
from edgec.core.errors import InputError, ToolchainError
from edgec.core.metrics import top1_accuracy
from edgec.core.tf import tensorflow
from edgec.core.tflite_model import layer_name, parse
from edgec.quantize.converter import int16x8_tflite
from edgec.quantize.spec import QuantSpec
from edgec.runtimes.base import dequantize_output, quantize_samples
from edgec.runtimes.bench import litert_p50_ms
from edgec.runtimes.litert import predict_litert
from edgec.runtimes.tflm import run_tflm, tflm_io_details

log = logging.getLogger(__name__)

_RMSE_SCALE_SUSPICIOUS = 0.7


def channel_noise_to_signal(float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int):
    """Mean over channels (last axis) of RMSE / RMS, skipping channels with no signal."""
    with np.errstate(invalid="ignore", over="ignore"):
        f = np.nan_to_num(np.asarray(float_values, np.float64))
        q = (np.asarray(quantized).astype(np.float64) - zero_point) * scale
    if f.shape != q.shape or f.size == 0:
        return float("nan")
    channels = f.shape[-1] if f.ndim else 1
    f, q = f.reshape(-1, channels), q.reshape(-1, channels)
    rms = np.sqrt(np.mean(f**2, axis=0))
    err = np.sqrt(np.mean((q - f) ** 2, axis=0))
    live = rms > 1e-6 * max(float(rms.max()), 1e-30)
    if not live.any():
        return 0.0
    return float(np.mean(err[live] / rms[live]))


@dataclass
class LayerAnalysis:
    """What the debugger found, worst layer first, plus what is needed to re-quantize."""

    layers: list[dict]
    debugger: object = field(repr=False)
    consumers: dict[str, list[str]] = field(repr=False, default_factory=dict)
    io_int8: bool = True

    def worst(self, n: int = 5) -> list[dict]:
        """The ``n`` layers with the largest noise-to-signal ratio."""
        return self.layers[:n]

    def to_json(self, n: int | None = None) -> dict:
        """The report.json section: the metric used, and the worst ``n`` layers (all by default)."""
        return {"tool": "tf.lite.experimental.QuantizationDebugger", "ranked_by": "noise_to_signal",
                "layers": self.layers[:n],
                "suspicious": [x["layer"] for x in self.layers
                               if x["rmse_over_scale"] > _RMSE_SCALE_SUSPICIOUS
                               or x["noise_to_signal"] > 0.5]}


def _as_list(keras_model, samples: dict[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Samples in the model's input order: by input name, or the one array of a one-input model."""
    names = list(keras_model.input_names)
    if isinstance(samples, np.ndarray):
        samples = {names[0]: samples} if len(names) == 1 else {}
    if len(names) == 1 and len(samples) == 1:
        return [np.asarray(next(iter(samples.values())), np.float32)]
    missing = [n for n in names if n not in samples]
    if missing:
        raise InputError(f"no samples for model input(s) {', '.join(missing)} (have: {', '.join(samples)})",
                         stage="layer-error")
    return [np.asarray(samples[n], np.float32) for n in names]


def _converter(keras_model, calibration: list[np.ndarray], *, per_channel: bool, count: int, io_int8: bool):

    tf = tensorflow()

    def representative():
        for i in range(count):
            yield [x[i:i + 1] for x in calibration]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_int8:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel = not per_channel  # the converter's only switch for it
    return conv


def analyze(keras_model, calibration: dict[str, np.ndarray] | np.ndarray, *, samples: int = QuantSpec.debug_samples,
            per_channel: bool = True, io_int8: bool = True) -> LayerAnalysis:
    """Run TFLite's QuantizationDebugger on ``keras_model`` and rank its layers by int8 error.

    ``calibration`` holds float samples (batch first), one array per model input; the first
    ``samples`` of them calibrate and debug. ``io_int8`` gives the re-quantized models int8 inputs
    and outputs (the target's ``quantization.io_dtype``), else float32. Returns the layers worst first.
    """
    tf = tensorflow()
    arrays = _as_list(keras_model, calibration)
    count = min(samples, len(arrays[0]))
    if count == 0:
        raise InputError("no calibration samples for the per-layer analysis", stage="layer-error")
    options = tf.lite.experimental.QuantizationDebugOptions(
        fully_quantize=io_int8, layer_direct_compare_metrics={"noise_to_signal": channel_noise_to_signal})
    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_converter(keras_model, arrays, per_channel=per_channel, count=count, io_int8=io_int8),
            debug_dataset=lambda: ([x[i:i + 1] for x in arrays] for i in range(count)),
            debug_options=options)
        debugger.run()
    except (ValueError, RuntimeError) as e:
        raise ToolchainError(f"QuantizationDebugger failed: {e}", stage="layer-error") from None
    layers = _read_statistics(debugger)
    return LayerAnalysis(layers, debugger, _consumers(debugger.get_nondebug_quantized_model()), io_int8)


def _read_statistics(debugger) -> list[dict]:

    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    # The debug model renames quantized tensors "<name>1"; the dump strips one trailing digit,
    # which also mangles graph outputs ("...:0" -> "...:"). Use the non-debug model's own names.
    tensors = parse(debugger.quant_model).tensors
    plain = {t.name for t in parse(debugger.get_nondebug_quantized_model()).tensors}
    layers = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        name = tensors[int(row["tensor_idx"])].name
        if name not in plain and name[:-1] in plain:
            name = name[:-1]
        scale = float(row["scale"])
        rmse = float(np.sqrt(float(row["mean_squared_error"])))
        layers.append({
            "layer": layer_name(name), "tensor": name, "op": row["op_name"],
            "rmse": rmse, "scale": scale, "rmse_over_scale": rmse / scale if scale else float("nan"),
            "range": 255.0 * scale, "max_abs_error": float(row["max_abs_error"]),
            "noise_to_signal": float(row["noise_to_signal"]),
        })
    layers.sort(key=lambda x: (-np.nan_to_num(x["noise_to_signal"], nan=-1.0), x["tensor"]))
    return layers


def _consumers(quantized: bytes) -> dict[str, list[str]]:
    """Output tensor name -> output tensor names of the ops that read it."""
    model = parse(quantized)
    names = {t.index: t.name for t in model.tensors}
    readers: dict[str, list[str]] = {}
    for op in model.operators:
        for i in op.inputs:
            if i >= 0 and i in names:
                readers.setdefault(names[i], []).extend(names[o] for o in op.outputs)
    return readers


def resolve_layers(analysis: LayerAnalysis, requested: Sequence[str]) -> list[str]:
    """Map ``--keep-float`` names (Keras layer names or TFLite tensor names) to tensor names."""
    out = []
    for name in requested:
        hits = [x["tensor"] for x in analysis.layers if name in (x["tensor"], x["layer"])]
        if not hits:
            known = ", ".join(sorted({x["layer"] for x in analysis.layers}))
            raise InputError(f"--keep-float: no quantized layer named '{name}' (layers: {known})",
                             stage="layer-error")
        out.extend(h for h in hits if h not in out)
    return out


def quantize_keeping_float(analysis: LayerAnalysis, keep: Sequence[str]) -> bytes:
    """The int8 model with the layers ``keep`` (tensor names) and their readers left in float."""
    tf = tensorflow()
    deny: list[str] = []
    for tensor in keep:
        for name in [tensor, *analysis.consumers.get(tensor, [])]:
            if name not in deny:
                deny.append(name)
    try:
        analysis.debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            fully_quantize=analysis.io_int8, denylisted_nodes=deny or None)
    except ValueError as e:  # the debugger re-quantizes; some graphs (fused HARD_SWISH) it cannot debug
        raise ToolchainError(f"TFLite's QuantizationDebugger could not re-quantize with {deny} in float "
                             f"({e}); keep layers in float with an ONNX or OpenVINO target instead",
                             stage="layer-error") from None
    return analysis.debugger.get_nondebug_quantized_model()


def litert_predict(model: bytes, inputs: list[np.ndarray] | dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` in LiteRT sample by sample; float in (by input name, or a list in the model's input
    order), float (dequantized) out."""
    # Keys that match no input name fall back to position in order_inputs: a list keeps its order.
    named = inputs if isinstance(inputs, dict) else {f"#{i}": x for i, x in enumerate(inputs)}
    return predict_litert(model, named)


def _int16x8_step(keras_model, calibration, inputs, labels, float_top1: float, io_int8: bool
                  ) -> tuple[bytes | None, dict]:
    """The whole model with int16 activations (int8 weights), measured in TFLite Micro itself.

    Only microcontroller targets offer it, so the candidate runs in the interpreter that will ship
    it: LiteRT has int16 kernels (RESIZE_BILINEAR, ...) that TFLite Micro lacks. A model the converter
    or TFLite Micro refuses in 16x8 is reported as tried, with the reason, and not shipped.
    """
    names = list(keras_model.input_names)
    arrays = dict(zip(names, _as_list(keras_model, calibration)))
    try:
        model = int16x8_tflite(keras_model, arrays, io_dtype="int8" if io_int8 else "float32")
        raw = run_tflm(model, quantize_samples(model, dict(zip(names, inputs))))[0]  # by name
        output = dequantize_output(raw.reshape(len(raw), -1), tflm_io_details(model)[1][0])
    except (EdgecError, RuntimeError, ValueError) as e:
        reason = str(e).splitlines()[0][:300]
        log.info("layer-error: int16 activations not possible: %s", reason)
        return None, {"activations": "int16", "error": reason}
    top1 = top1_accuracy(output, np.asarray(labels))
    log.info("layer-error: int16 activations: top-1 %.4f (drop %.4f)", top1, float_top1 - top1)
    return model, {"kept_float": [], "kept_tensors": [], "activations": "int16", "runtime": "tflm", "top1": top1,
                   "drop": float_top1 - top1, "bytes": len(model), "p50_ms": _latency_ms(model, inputs)}


def _latency_ms(model: bytes, inputs: list[np.ndarray], runs: int = 50) -> float:

    return litert_p50_ms(model, [x[:1] for x in inputs], runs=runs)


def fit_accuracy_drop(keras_model, calibration, evaluation, labels: np.ndarray | None = None, *,
                      max_drop: float | None = None, keep_float: Sequence[str] = (), max_layers: int = 8,
                      analysis: LayerAnalysis | None = None, int16x8: bool = False,
                      progress: Callable[[str], None] | None = None) -> tuple[bytes, dict]:
    """Keep layers in float until the int8 top-1 drop on ``evaluation`` is at most ``max_drop``.

    Starts from ``keep_float`` (``--keep-float``), then adds the worst remaining layer one at a time
    (at most ``max_layers``). With ``int16x8`` (the target has int16 kernels) and no ``keep_float``,
    the whole model with int16 activations is tried first, right after the int8 baseline: the
    converter cannot mix int8 and int16 layers, and int16 needs no float unit on the device. Without
    labels, top-1 is agreement with the float Keras model. Returns the final model bytes and a report
    section: each step's kept layers (and activation type), top-1, size and latency.
    """
    analysis = analysis or analyze(keras_model, calibration)
    inputs = _as_list(keras_model, evaluation)
    named = dict(zip(keras_model.input_names, inputs))  # the converter may reorder a model's inputs
    reference = np.asarray(keras_model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0))
    if labels is None:
        labels = reference.reshape(len(reference), -1).argmax(1)
    float_top1 = top1_accuracy(reference, np.asarray(labels))
    requested = resolve_layers(analysis, keep_float)
    candidates = [x["tensor"] for x in analysis.layers if x["tensor"] not in requested]
    kept: list[str] = []
    steps, models = [], []
    wide, tried = None, None
    int16_pending = int16x8
    while True:
        model = quantize_keeping_float(analysis, kept)
        top1 = top1_accuracy(litert_predict(model, named)[0], np.asarray(labels))
        steps.append({"kept_float": [layer_name(t) for t in kept], "kept_tensors": list(kept),
                      "top1": top1, "drop": float_top1 - top1, "bytes": len(model),
                      "p50_ms": _latency_ms(model, inputs)})
        models.append(model)
        log.info("layer-error: kept %s in float: top-1 %.4f (drop %.4f)", steps[-1]["kept_float"], top1,
                 float_top1 - top1)
        if progress:
            progress(f"kept {len(kept)} layer(s) in float: top-1 {top1:.4f}")
        if requested and not kept:  # step 0 is all-int8, the baseline of the cost; then --keep-float
            kept = list(requested)
            continue
        done = max_drop is None or float_top1 - top1 <= max_drop
        if not done and int16_pending and not requested:
            int16_pending = False
            wide, step = _int16x8_step(keras_model, calibration, inputs, labels, float_top1, analysis.io_int8)
            if wide is not None and step["drop"] <= max_drop:  # shipped; else reported, float layers follow
                steps.append(step)
                models.append(wide)
                break
            tried = step
        if done or not candidates or len(kept) - len(requested) >= max_layers:
            break
        kept.append(candidates.pop(0))
    # Ship the last step when it met the drop; otherwise the best one tried (fewest float layers on ties),
    # which verification will still fail, but with the least damage.
    shipped = len(steps) - 1
    if max_drop is not None and steps[-1]["drop"] > max_drop:
        shipped = min(range(len(steps)), key=lambda i: (steps[i]["drop"], i))
    model, first, last = models[shipped], steps[0], steps[shipped]
    section = {"reference_top1": float_top1, "max_accuracy_drop": max_drop, "steps": steps,
               "shipped_step": shipped,
               "kept_float": last["kept_float"], "activations": last.get("activations", "int8"),
               "met": max_drop is None or last["drop"] <= max_drop,
               "cost": {"bytes": last["bytes"] - first["bytes"],
                        "p50_ms": last["p50_ms"] - first["p50_ms"]}}
    if tried is not None:
        section["int16x8_tried"] = tried
    return model, section
