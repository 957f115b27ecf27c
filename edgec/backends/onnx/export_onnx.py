"""ONNX exporter: Keras -> ONNX with tf2onnx, fused, then INT8 with ONNX Runtime's ``quantize_static``.

The INT8 model is QDQ (QuantizeLinear/DequantizeLinear pairs around float ops), the format ONNX
Runtime, OpenVINO and TensorRT all read; weights are symmetric int8 per output channel, activations
asymmetric int8, and the calibration method (minmax, entropy, percentile) is the build's
``QuantSpec.calibration_method`` (``--calibration-method``, else the profile's). Inputs and outputs
stay float32, so the artifact is a drop-in replacement for the float model.

tf2onnx 1.17 works here with TensorFlow 2.21, NumPy 2 and protobuf 7 for the tf_keras models edgec
makes (checked by the tests); no pin was needed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgec.core import targets
from edgec.core.errors import InputError, ToolchainError
from edgec.core.tf import tensorflow
from edgec.frontend.onnx import fuse as onnx_fuse
from edgec.frontend.onnx.read import fix_batch
from edgec.frontend.onnx.read import opset_of
from edgec.quantize import stem
from edgec.quantize.keep_float_onnx import fit, range_fixed_outputs
from edgec.quantize.spec import CALIBRATION_METHODS, QuantSpec

log = logging.getLogger(__name__)

STAGE = "export-onnx"
OPSET = 17


class _NoTraceback(logging.Filter):
    """Keep a library's log record to its one line: drop the traceback it attaches."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.msg = f"{record.getMessage()} ({record.exc_info[0].__name__}: {record.exc_info[1]})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


@contextlib.contextmanager
def _one_line_logs(prefix: str):
    """tf2onnx logs a skipped optimizer pass (e.g. its transpose pass on ``x + 3.0``, MobileNetV3's
    hard-swish) as a warning with a full traceback; the conversion goes on. One line is enough."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == prefix or name.startswith(prefix + ".")]
    loggers += [logging.getLogger(prefix), logging.getLogger(prefix + ".optimizer")]
    guard = _NoTraceback()
    for logger in loggers:
        logger.addFilter(guard)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(guard)


def keras_to_onnx(keras_model: Any, *, opset: int = OPSET, batch: int | None = 1) -> Any:
    """Convert a ``tf_keras`` model to an ``onnx.ModelProto`` with tf2onnx (inputs keep Keras names).

    ``batch`` fixes the batch dimension (edge runtimes want static shapes); ``None`` keeps it dynamic.
    """
    tf = tensorflow()
    import tf2onnx

    spec = [tf.TensorSpec((batch, *t.shape[1:]), t.dtype, name=name)
            for name, t in zip(keras_model.input_names, keras_model.inputs)]
    try:
        with _one_line_logs("tf2onnx"):
            model, _ = tf2onnx.convert.from_keras(keras_model, input_signature=spec, opset=opset)
    except (ValueError, TypeError, RuntimeError, KeyError) as e:
        raise ToolchainError(f"tf2onnx could not convert the Keras model: {str(e).splitlines()[0]}",
                             stage=STAGE) from None
    model.producer_name = "edgec/tf2onnx"
    model.producer_version = tf2onnx.__version__
    if batch is not None:
        fix_batch(model, batch, where="tf2onnx output")
    canonical_names(model)
    return model


def canonical_names(model: Any) -> None:
    """Renumber tf2onnx's process-global ``__N`` name suffixes in order of appearance (in place).

    tf2onnx numbers generated names with a counter that lives as long as the process, so converting
    the same model twice gives different names; renumbering makes the bytes depend on the model only.
    """
    pattern = re.compile(r"__\d+")
    mapping: dict[str, str] = {}

    def rename(name: str) -> str:
        if not pattern.search(name):
            return name
        if name not in mapping:
            mapping[name] = f"{pattern.sub('', name)}__{len(mapping)}"
        return mapping[name]

    # Number names in the order the graph uses them (nodes are topologically ordered), not in the
    # initializer list's order, which tf2onnx builds from sets and so varies between processes.
    for node in model.graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for tensor in model.graph.initializer:
        tensor.name = rename(tensor.name)
    for value in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        value.name = rename(value.name)
    ordered = sorted(model.graph.initializer, key=lambda t: t.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(ordered)


class SampleReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over edgec samples, one sample per batch.

    ``samples`` is a :class:`edgec.core.calibration.Dataset` or a dict of arrays (batch first); names are
    matched to the ONNX inputs, by position when they differ.
    """

    def __init__(self, samples: Any, input_names: list[str], *, limit: int = QuantSpec.onnx_calibration_samples):
        from onnxruntime.quantization import CalibrationDataReader

        CalibrationDataReader.register(type(self))
        self._arrays = feeds(samples, input_names, limit=limit)
        self._iter: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def __len__(self) -> int:
        return len(next(iter(self._arrays.values())))

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next single-sample feed, or None at the end (ORT's reader protocol)."""
        return next(self._iter, None)

    def rewind(self) -> None:
        """Start again from the first sample."""
        self._iter = iter([{k: v[i:i + 1] for k, v in self._arrays.items()} for i in range(len(self))])


def feeds(samples: Any, input_names: list[str], *, limit: int | None = None) -> dict[str, np.ndarray]:
    """Samples as float32 arrays keyed by ``input_names`` (by name, else by position), first ``limit``."""
    arrays = samples.arrays() if hasattr(samples, "arrays") else dict(samples)
    if not arrays or len(next(iter(arrays.values()))) == 0:
        raise InputError("no calibration samples to quantize with", stage=STAGE)
    if all(n in arrays for n in input_names):
        ordered = [arrays[n] for n in input_names]
    elif len(arrays) == len(input_names):
        ordered = list(arrays.values())
    else:
        raise InputError(f"calibration inputs {sorted(arrays)} do not match the model's {input_names}",
                         stage=STAGE)
    return {n: np.asarray(a[:limit], np.float32) for n, a in zip(input_names, ordered)}


def sample_count(samples: Any) -> int:
    """Number of samples in a Dataset or a dict of arrays (batch first)."""
    if isinstance(samples, dict):
        return len(next(iter(samples.values()))) if samples else 0
    return len(samples)


def quantize(model: Any, samples: Any, *, method: str = "minmax", per_channel: bool = True,
             work: Path, limit: int = QuantSpec.onnx_calibration_samples, activation_dtype: str = "uint8",
             nodes_to_exclude: list[str] | None = None, weight_dtype: str = "int8", reduce_range: bool = False) -> Any:
    """Quantize a float ONNX model to INT8 QDQ with ``quantize_static``; return the ModelProto.

    ``method`` is minmax, entropy or percentile; ``work`` holds ORT's temporary files. Weights are
    symmetric int8 per channel. Activations are asymmetric uint8 by default, because ONNX Runtime's
    x86 kernels are built for uint8 x int8 (measured on ResNet-8 here: 1.48x over float with uint8,
    0.61x with int8 activations); TensorRT wants ``activation_dtype="int8"`` (symmetric).
    ``weight_dtype`` "uint8" (U8U8) or ``reduce_range`` (7-bit weights) keep x86 CPUs without VNNI
    from saturating (see :func:`edgec.core.targets.int8_arithmetic`).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise InputError(f"calibration method '{method}' is unknown (use one of "
                         f"{', '.join(CALIBRATION_METHODS)})", stage=STAGE)
    for what, value in (("activation_dtype", activation_dtype), ("weight_dtype", weight_dtype)):
        if value not in ("uint8", "int8"):
            raise InputError(f"{what} '{value}' is unknown (uint8 or int8)", stage=STAGE)
    activations = QuantType.QUInt8 if activation_dtype == "uint8" else QuantType.QInt8
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / "onnx_float_for_quant.onnx", work / "onnx_int8.onnx"
    onnx.save(model, str(src))
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    reader = SampleReader(samples, inputs, limit=limit)
    quiet = _DropPreprocessAdvice()
    logging.getLogger().addFilter(quiet)  # ORT logs this advice on the root logger on every call
    chatter = io.StringIO()  # ORT's histogram calibrators print() progress; keep stdout clean
    try:
        with contextlib.redirect_stdout(chatter):
            quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ,
                            activation_type=activations,
                            weight_type=QuantType.QUInt8 if weight_dtype == "uint8" else QuantType.QInt8,
                            per_channel=per_channel, reduce_range=reduce_range, calibrate_method=methods[method],
                            extra_options={"ActivationSymmetric": activations == QuantType.QInt8,
                                           "WeightSymmetric": True},
                            calibration_providers=["CPUExecutionProvider"],
                            nodes_to_exclude=list(nodes_to_exclude or []))
    except (RuntimeError, ValueError, KeyError) as e:
        raise ToolchainError(f"onnxruntime quantize_static ({method}) failed: {str(e).splitlines()[0]}",
                             stage=STAGE) from None
    finally:
        logging.getLogger().removeFilter(quiet)
        log.debug("quantize_static output: %s", chatter.getvalue().strip())
    return onnx.load(str(dst))


class _DropPreprocessAdvice(logging.Filter):
    """Hide ORT's "consider pre-processing" warning: edgec's graph is already fused and shape-inferred."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage() and "preprocess" not in record.getMessage()


def float_onnx(build: Any) -> Any:
    """The float, fused ONNX model of a build plus the fusion report.

    The user's own (folded) ONNX graph when the build has one (``build.onnx_model``: an ONNX model
    kept as ONNX), else the Keras model converted by tf2onnx.
    """
    native = getattr(build, "onnx_model", None)
    model = native if native is not None else keras_to_onnx(build.keras_model)
    fused, counts = onnx_fuse.fuse(model)
    counts["source"] = "the model's own ONNX graph (folded by onnxslim)" if native is not None else "tf2onnx"
    onnx_fuse.check_equal(model, fused)
    return fused, counts


def export(build: Any) -> None:
    """Exporter for ``format = "onnx"``: writes ``model.onnx`` (INT8 QDQ, or float for scheme fp32)."""
    import onnx

    spec = build.quant
    scheme = spec.scheme
    if scheme not in ("int8", "fp32"):
        raise InputError(f"quantization scheme '{scheme}' is not available for ONNX (int8 or fp32)",
                         stage=STAGE, target=build.target.get("id"))
    build.work.mkdir(parents=True, exist_ok=True)
    model, counts = float_onnx(build)
    float_path = build.work / "model_float.onnx"
    onnx.save(model, str(float_path))
    info = {"opset": opset_of(model), "scheme": scheme, "fusion": counts}
    if scheme == "int8":
        float_model = model
        arithmetic = targets.int8_arithmetic(build.target)
        # A Softmax output quantized at ONNX Runtime's fixed [0, 1] range loses every small probability
        # (a flat 1000-way output becomes all zeros): it stays float, the logits before it stay int8.
        float_outputs = range_fixed_outputs(float_model)

        def quantized(excluded: list[str]) -> Any:
            return quantize(float_model, build.calibration, method=spec.calibration_method,
                            per_channel=spec.per_channel, activation_dtype=spec.activation_dtype, work=build.work,
                            limit=spec.onnx_calibration_samples,
                            nodes_to_exclude=list(dict.fromkeys([*excluded, *float_outputs])),
                            weight_dtype=arithmetic["weight_dtype"], reduce_range=arithmetic["reduce_range"])

        if spec.mixed:
            model, build.report["keep_float"] = fit(float_model, float_path, quantized, build.evaluation,
                                                    build.calibration, keep=list(spec.keep_float),
                                                    max_drop=spec.max_accuracy_drop,
                                                    debug_samples=spec.qdq_debug_samples)
        else:
            float_layers, build.report["stem"] = stem.choose(spec.stem, stem.onnx_stem(float_model))
            model = quantized(float_layers)
            info["stem"] = build.report["stem"]["chosen"]
        if float_outputs:
            info["float_outputs"] = {"nodes": float_outputs, "why": "Softmax graph output: ONNX Runtime fixes its "
                                     "int8 range to [0, 1] (step 1/255), which erases small probabilities"}
        info.update(calibration_method=spec.calibration_method, per_channel=spec.per_channel,
                    activation_dtype=spec.activation_dtype, isa=arithmetic["isa"],
                    weight_dtype=arithmetic["weight_dtype"], reduce_range=arithmetic["reduce_range"],
                    calibration_samples=min(sample_count(build.calibration), spec.onnx_calibration_samples))
    out = build.out / "model.onnx"
    raw = model.SerializeToString(deterministic=True)
    out.write_bytes(raw)
    build.artifact = out
    build.report.setdefault("size", {}).update(
        artifact_bytes=len(raw), float_onnx_bytes=float_path.stat().st_size,
        gzip_bytes=len(gzip.compress(raw, mtime=0)))
    build.report["onnx"] = info
    log.info("wrote %s (%d bytes, %s)", out, len(raw), scheme)
