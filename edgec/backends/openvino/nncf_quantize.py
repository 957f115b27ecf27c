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
             ignored: list[str] | None = None) -> Any:
    """INT8 post-training quantization with ``nncf.quantize`` on edgec samples (one per batch).

    ``preset`` "performance" gives symmetric activations (fastest on Intel CPUs); "mixed" asymmetric.
    ``calibration_method`` picks the activation range estimator (see ``RANGE_ESTIMATORS``);
    ``overflow_fix`` "disable" keeps 8-bit weights everywhere (CPUs with VNNI), "first_layer" or
    "enable" use 7-bit weights there or everywhere (older AVX2-only CPUs). ``ignored`` names
    operations to leave in float (``--keep-float``).
    """
    import nncf

    items = nncf_items(ov_model, samples, limit=limit)
    settings = nncf_settings(preset=preset, calibration_method=calibration_method, overflow_fix=overflow_fix,
                             ignored=ignored, correction=bias_correction(ov_model))
    advanced = settings.pop("advanced")
    try:
        return nncf.quantize(ov_model, nncf.Dataset(items, model_inputs), subset_size=len(items),
                             advanced_parameters=advanced, **settings)
    except (RuntimeError, ValueError, nncf.ValidationError) as e:
        raise ToolchainError(f"nncf.quantize failed: {openvino_reason(e)}", stage=STAGE) from None
