"""OpenVINO exporter: IR (``model.xml``/``model.bin``) in FP32, FP16-compressed or INT8 (NNCF).

The Keras model reaches OpenVINO through the same fused ONNX graph the ONNX exporter makes
(``openvino.convert_model`` on the ONNX file), so both Intel paths start from identical operators.
``quantization.scheme`` picks the precision: ``fp32``; ``fp16`` (weights stored as FP16 by
``save_model(compress_to_fp16=True)``; the CPU plugin still computes in FP32/BF16); ``int8``
(``nncf.quantize`` post-training, fed the same calibration samples as every other toolchain, weights
per channel, then saved without FP16 compression so the FakeQuantize ranges stay exact).

Two NNCF defaults are overridden, both measured on the MLPerf Tiny ResNet-8 (200 held-out photo crops
whose float prediction is stable, agreement / cosine with the float model): NNCF estimates per-tensor
activation ranges as the *mean* of per-sample minima and maxima, which clips every sample above the
average (0.900 / 0.956); the global min/max that the TFLite converter and ONNX Runtime use gives
0.945 / 0.989. NNCF also quantizes the first layer's weights to 7 bits by default ("overflow fix",
needed only by CPUs without VNNI, whose AVX2 int8 dot product can saturate): without it 0.945 -> 0.975
when bias correction is off. NNCF's default *fast* bias correction then costs 0.895 / 0.973; its full
bias correction (statistics per layer on the quantized model) gives 0.980 / 0.996, at a few seconds;
above ``FULL_BIAS_CORRECTION_MAX_LAYERS`` weighted layers it takes too long and the fast one is used
(``openvino.bias_correction`` in the report).
The target's ``cpu.isa`` says which CPUs it is for (``edgec.core.targets.int8_arithmetic``).
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Any

from edgec.backends.onnx.export_onnx import float_onnx, sample_count
from edgec.backends.openvino.keep_float import fit, resolve_ops
from edgec.backends.openvino.nncf_quantize import RANGE_ESTIMATORS, bias_correction, quantize
from edgec.core import targets
from edgec.core.errors import InputError, ToolchainError
from edgec.runtimes.openvino import openvino_reason

log = logging.getLogger(__name__)

STAGE = "export-openvino"
SCHEMES = ("fp32", "fp16", "int8")


def onnx_to_openvino(onnx_path: Path) -> Any:
    """Convert an ONNX file to an ``openvino.Model``."""
    import openvino as ov

    try:
        return ov.convert_model(str(onnx_path))
    except (RuntimeError, ValueError) as e:  # OpConversionFailure is a RuntimeError
        raise ToolchainError(f"openvino.convert_model failed on {onnx_path}: {openvino_reason(e)}",
                             stage=STAGE) from None


def save(ov_model: Any, folder: Path, *, compress_to_fp16: bool) -> Path:
    """``openvino.save_model`` to ``folder/model.xml`` (+ ``model.bin``); returns the xml path."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / "model.xml"
    canonical_names(ov_model)
    ov.save_model(ov_model, str(xml), compress_to_fp16=compress_to_fp16)
    return xml


def canonical_names(ov_model: Any) -> None:
    """Rename OpenVINO's auto-named ops (``Constant_31934``) by position in the graph.

    Those numbers come from a process-wide counter, so the same model saved in two runs would
    otherwise differ in ``model.xml``; names given by the source model are kept.
    """
    import re

    auto = re.compile(r"[A-Za-z]+_\d+")
    taken = {op.get_friendly_name() for op in ov_model.get_ordered_ops()}
    for index, op in enumerate(ov_model.get_ordered_ops()):
        name = op.get_friendly_name()
        if auto.fullmatch(name) and name.startswith(op.get_type_name()):
            new = f"{op.get_type_name()}_op{index}"
            if new not in taken:
                op.set_friendly_name(new)


def export(build: Any) -> None:
    """Exporter for ``format = "openvino"``: writes ``model.xml``/``model.bin`` at the scheme's precision."""
    import onnx

    spec = build.quant
    scheme = spec.scheme
    if scheme not in SCHEMES:
        raise InputError(f"quantization scheme '{scheme}' is not available for OpenVINO "
                         f"({', '.join(SCHEMES)})", stage=STAGE, target=build.target.get("id"))
    build.work.mkdir(parents=True, exist_ok=True)
    model, counts = float_onnx(build)
    onnx_path = build.work / "model_float.onnx"
    onnx.save(model, str(onnx_path))
    ov_model = onnx_to_openvino(onnx_path)
    info: dict[str, Any] = {"scheme": scheme, "fusion": counts,
                            "device": build.target.get("device", {}).get("device_string", "CPU")}
    if scheme == "int8":
        method = spec.calibration_method
        arithmetic = targets.int8_arithmetic(build.target)  # resolve() has checked the values
        overflow_fix = arithmetic["overflow_fix"]
        correction = bias_correction(ov_model)  # before quantizing: NNCF's output has more MatMuls
        notes: dict[str, Any] = {}
        ov_model = _quantize_build(build, ov_model, method, overflow_fix, model, notes)
        info.update(calibration_samples=min(sample_count(build.calibration), spec.nncf_calibration_samples),
                    quantizer="nncf.quantize" if spec.max_accuracy_drop is None
                    else "nncf.quantize_with_accuracy_control",
                    preset="performance", bias_correction=correction, calibration_method=method,
                    activation_range_estimator=RANGE_ESTIMATORS[method], overflow_fix=overflow_fix,
                    isa=arithmetic["isa"], **notes)
    xml = save(ov_model, build.out, compress_to_fp16=scheme == "fp16")
    weights = xml.with_suffix(".bin")
    build.artifact = xml
    raw = xml.read_bytes() + weights.read_bytes()
    build.report.setdefault("size", {}).update(
        artifact_bytes=len(raw), xml_bytes=xml.stat().st_size, bin_bytes=weights.stat().st_size,
        float_onnx_bytes=onnx_path.stat().st_size, gzip_bytes=len(gzip.compress(raw, mtime=0)))
    build.report["openvino"] = info
    log.info("wrote %s (+ .bin, %d bytes, %s)", xml, len(raw), scheme)


def _quantize_build(build: Any, ov_model: Any, method: str, overflow_fix: str, onnx_model: Any = None,
                    notes: dict | None = None) -> Any:
    """INT8 for a build: plain, with ``--keep-float`` operations ignored, or NNCF's accuracy control;
    ``notes`` receives what :func:`~edgec.backends.openvino.nncf_quantize.quantize` reports."""
    keep, max_drop, limit = list(build.quant.keep_float), build.quant.max_accuracy_drop, \
        build.quant.nncf_calibration_samples
    ignored = resolve_ops(ov_model, keep, onnx_model) if keep else []
    if max_drop is None:
        model = quantize(ov_model, build.calibration, limit=limit, calibration_method=method,
                         overflow_fix=overflow_fix, ignored=ignored, notes=notes)
        if keep:
            build.report["keep_float"] = {"tool": "nncf.IgnoredScope", "kept_float": ignored}
        return model
    model, section = fit(ov_model, build.calibration, build.evaluation, max_drop=max_drop, kept=ignored,
                         calibration_method=method, overflow_fix=overflow_fix, limit=limit)
    build.report["keep_float"] = section
    if "note" in section:
        build.failures.append(f"[quantize / {build.target.get('id')}] {section['note']}")
    return model


def fake_quantize_count(xml: Path) -> int:
    """Number of FakeQuantize operations in an IR (0 for a float IR): evidence of INT8."""
    import openvino as ov

    return sum(1 for op in ov.Core().read_model(str(xml)).get_ops() if op.get_type_name() == "FakeQuantize")


def weight_dtypes(xml: Path) -> dict[str, int]:
    """Element types of the IR's Constant ops -> count (f16 after FP16 compression)."""
    import openvino as ov

    out: dict[str, int] = {}
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() == "Constant":
            key = op.get_output_element_type(0).get_type_name()
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))

