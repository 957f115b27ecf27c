"""INT8 post-training quantization of an ``openvino.Model`` with NNCF, on edgec's calibration samples.

Shared by the OpenVINO exporter (:mod:`edgec.backends.openvino.export_openvino`) and its keep-float
search (:mod:`edgec.backends.openvino.keep_float`); why the NNCF defaults are overridden is told in
the exporter's docstring.
"""

from __future__ import annotations

from typing import Any

from edgec.backends.onnx.export_onnx import feeds
from edgec.core.errors import ToolchainError
from edgec.quantize.spec import QuantSpec
from edgec.runtimes.base import fit_layout
from edgec.runtimes.openvino import openvino_reason

STAGE = "export-openvino"
# edgec's calibration methods -> NNCF's activation range estimators (the ONNX path's meaning).
RANGE_ESTIMATORS = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE", "entropy": "HISTOGRAM"}
# NNCF's full bias correction compiles and runs a subgraph per corrected layer on every calibration sample:
# seconds for ResNet-8 or a MobileNet, but the light zoo's DenseNet-121 (121 weighted layers at 224x224)
# was still in it after 14 minutes here (2 shared cores). Above this many weighted layers the fast bias
# correction (one statistics pass) is used, and the report says which one ran.
FULL_BIAS_CORRECTION_MAX_LAYERS = 96
_WEIGHTED = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul")


def weighted_layers(ov_model: Any) -> int:
    """Convolutions and matrix products of an OpenVINO model: the layers bias correction visits."""
    return sum(op.get_type_name() in _WEIGHTED for op in ov_model.get_ops())


def bias_correction(ov_model: Any) -> str:
    """``full`` (NNCF's per-layer correction, the more accurate) or ``fast`` for a model this large."""
    return "fast" if weighted_layers(ov_model) > FULL_BIAS_CORRECTION_MAX_LAYERS else "full"


def nncf_items(ov_model: Any, samples: Any, *, limit: int | None = None) -> list[tuple]:
    """edgec samples as one tuple of batch-1 arrays per sample, in the model's input order and layout."""
    names = [p.get_any_name() for p in ov_model.inputs]
    shapes = [[d.get_length() if d.is_static else -1 for d in p.get_partial_shape()] for p in ov_model.inputs]
    arrays = feeds(samples, names, limit=limit)
    arrays = {n: fit_layout(arrays[n], s, n) for n, s in zip(names, shapes)}
    count = len(next(iter(arrays.values())))
    return [tuple(arrays[n][i:i + 1] for n in names) for i in range(count)]


def model_inputs(item: tuple) -> Any:
    """What an OpenVINO model takes for one ``nncf_items`` tuple."""
    return item[0] if len(item) == 1 else list(item)


def nncf_settings(*, preset: str = "performance", calibration_method: str = "minmax",
                  overflow_fix: str = "disable", ignored: list[str] | None = None, correction: str = "full") -> dict:
    """Keyword arguments shared by ``nncf.quantize`` and ``nncf.quantize_with_accuracy_control``;
    ``correction`` is :func:`bias_correction`'s choice."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet,
                                                   RANGE_ESTIMATORS[calibration_method]),
        overflow_fix=OverflowFix(overflow_fix))
    settings = {"preset": presets[preset], "fast_bias_correction": correction == "fast", "advanced": advanced}
    if ignored:
        settings["ignored_scope"] = nncf.IgnoredScope(names=list(ignored))
    return settings


def quantize(ov_model: Any, samples: Any, *, limit: int = QuantSpec.nncf_calibration_samples,
             preset: str = "performance",
             calibration_method: str = "minmax", overflow_fix: str = "disable",
             ignored: list[str] | None = None, notes: dict | None = None) -> Any:
    """INT8 post-training quantization with ``nncf.quantize`` on edgec samples (one per batch).

    ``preset`` "performance" gives symmetric activations (fastest on Intel CPUs); "mixed" asymmetric.
    ``calibration_method`` picks the activation range estimator (see ``RANGE_ESTIMATORS``);
    ``overflow_fix`` "disable" keeps 8-bit weights everywhere (CPUs with VNNI), "first_layer" or
    "enable" use 7-bit weights there or everywhere (older AVX2-only CPUs). ``ignored`` names
    operations to leave in float (``--keep-float``). ``notes``, when given, receives
    ``per_tensor_activations``: how many of NNCF's activation quantizers :func:`per_tensor_misplaced`
    made per-tensor.
    """
    import nncf

    items = nncf_items(ov_model, samples, limit=limit)
    settings = nncf_settings(preset=preset, calibration_method=calibration_method, overflow_fix=overflow_fix,
                             ignored=ignored, correction=bias_correction(ov_model))
    advanced = settings.pop("advanced")
    try:
        quantized = nncf.quantize(ov_model, nncf.Dataset(items, model_inputs), subset_size=len(items),
                                  advanced_parameters=advanced, **settings)
    except (RuntimeError, ValueError, nncf.ValidationError) as e:
        raise ToolchainError(f"nncf.quantize failed: {openvino_reason(e)}", stage=STAGE) from None
    fixed = per_tensor_misplaced(quantized)
    if notes is not None:
        notes["per_tensor_activations"] = fixed
    return quantized


# Operations a per-channel activation range passes through unchanged on its way to the convolution
# that reads it (its axes move only through a Transpose).
_SAME_AXES = {"Pad", "Convert", "Relu", "Clamp"}


def _lands_off_channels(output: Any, axis: int) -> bool:
    """Whether ``axis`` of ``output`` reaches a convolution's data input as anything but its channel
    axis (1), following Transposes (which move it) and element-wise ops (which keep it)."""
    import numpy as np

    for port in output.get_target_inputs():
        node, index = port.get_node(), port.get_index()
        kind = node.get_type_name()
        if index != 0:
            continue
        if kind in ("Convolution", "GroupConvolution"):
            if axis != 1:
                return True
        elif kind == "Transpose":
            order = node.input_value(1).get_node()
            if order.get_type_name() == "Constant":
                perm = [int(v) for v in np.asarray(order.get_data()).reshape(-1)]
                if axis in perm and _lands_off_channels(node.output(0), perm.index(axis)):
                    return True
        elif kind in _SAME_AXES and _lands_off_channels(node.output(0), axis):
            return True
    return False


def per_tensor_misplaced(ov_model: Any) -> int:
    """Make per-tensor any activation FakeQuantize whose per-channel axis is not its readers' channels.

    NNCF quantizes a (depthwise) convolution's input per channel, on axis 1, and then moves that
    quantizer up through the Transpose and Pad before it without moving the axis. On a graph converted
    from Keras (channels last, with tf2onnx's layout Transposes) the ranges then run along the image's
    rows: MobileNetV3Small has a [1, 12, 1, 1] range on a [1, 12, 12, 88] tensor. OpenVINO's CPU plugin
    refuses to compile that once it fuses the quantizer into the convolution before it (``Check
    'any_of(scale.size(), OC, 1U)' failed``, dnnl_postops_composer.cpp). The replacement covers every
    slice's range (lowest low, highest high), as NNCF's per-tensor activations do; per-channel ranges
    that do reach a convolution's channels, or no convolution, are left alone. Returns how many.
    """
    import numpy as np
    import openvino as ov

    changed = 0
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        ranges = [op.input_value(i).get_node() for i in range(1, 5)]
        if any(r.get_type_name() != "Constant" for r in ranges):
            continue  # a weight's quantizer reads its ranges through other operations
        values = [np.asarray(r.get_data(), np.float32) for r in ranges]
        axes = [a for a, n in enumerate(values[0].shape) if n > 1]
        if not axes or op.input_value(0).get_node().get_type_name() == "Constant":
            continue  # per-tensor already, or a weight
        if len(axes) != 1 or not _lands_off_channels(op.output(0), axes[0]):
            continue  # NNCF's per-channel ranges where it means them
        if not (np.array_equal(values[0], values[2]) and np.array_equal(values[1], values[3])):
            continue  # a quantizer that also rescales is left as NNCF made it
        low, high = float(values[0].min()), float(values[1].max())
        for index, value in ((1, low), (2, high), (3, low), (4, high)):
            op.input(index).replace_source_output(ov.opset13.constant(np.float32(value)).output(0))
        changed += 1
    return changed
