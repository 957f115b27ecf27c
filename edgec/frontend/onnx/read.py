"""Front end for ONNX: read a model file safely, check it, fix its batch, fold it, and lower it to Keras.

Safety comes first because an ONNX file can point at arbitrary files through *external data*
(``location`` entries on tensors). Every location is checked before any byte of it is read: it must be
a relative path without ``..``, must resolve (symlinks followed) to a regular file inside the model's
own folder, and the model is parsed with ``load_external_data=False`` so that ONNX itself never opens a
path we have not checked.

After loading: ``onnx.checker.check_model(full_check=True)`` (which includes strict shape inference),
the opset is brought into :data:`SUPPORTED_OPSETS` with ``onnx.version_converter`` or refused, a
dynamic batch dimension is fixed to 1 (every edge target wants static shapes), and shapes are
inferred so that the lowering knows every tensor's rank. :func:`fold` then evaluates constants and
shape arithmetic with onnxslim; the folded graph is what every target starts from (ONNX Runtime and
OpenVINO quantize it as is, TFLite targets get its Keras lowering).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from edgec.core.errors import InputError
from edgec.frontend.model import LoadedModel
from edgec.frontend.onnx import lower as onnx_lower
from edgec.frontend.onnx.fuse import check_equal
from edgec.frontend.onnx.graph import signature

log = logging.getLogger(__name__)

STAGE = "load"
# Opsets whose operator semantics the lowering and both runtimes (ORT 1.2x, OpenVINO 202x) share.
SUPPORTED_OPSETS = (13, 21)
# Where a model outside the range is converted to: the middle of the range, well supported by all.
CONVERT_TO_OPSET = 17
FOLD_TOLERANCE = 1e-5  # max abs difference / output range between the folded and the original graph
_ONNX_DOMAINS = ("", "ai.onnx")


def read(path: str | Path, *, batch: int | None = 1) -> Any:
    """Read, check and normalize an ONNX model file; return the ``onnx.ModelProto``.

    External data is checked (inside the model's folder, no ``..``, no absolute path, no symlink
    out) before it is loaded. ``batch`` replaces a dynamic first dimension of inputs and outputs
    (``None`` keeps it). Any problem is an :class:`InputError` with one line.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX model '{path}' not found or not a file", stage=STAGE)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise InputError(f"{path}: not a readable ONNX model (truncated or corrupt file?): "
                         f"{_first_line(e)}", stage=STAGE) from None
    if not model.HasField("graph") or not model.opset_import:
        raise InputError(f"{path}: not a readable ONNX model (no graph or opset; truncated or corrupt "
                         "file?)", stage=STAGE)
    if not model.graph.output:
        raise InputError(f"{path}: the graph has no outputs; nothing to compile", stage=STAGE)
    check_external_data(model, path.parent)
    try:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        raise InputError(f"{path}: cannot read its external data: {_first_line(e)}", stage=STAGE) from None
    _check(model, path)
    model = _convert_opset(model, path)
    if batch is not None:
        fix_batch(model, batch, where=str(path))
    return _infer_shapes(model, path)


def check_external_data(model: Any, folder: Path) -> None:
    """Refuse external-data locations that escape ``folder`` (checked before anything is read)."""
    from onnx.external_data_helper import _get_all_tensors

    root = Path(os.path.realpath(folder))
    for tensor in _get_all_tensors(model):
        if tensor.data_location != tensor.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if not isinstance(location, str):  # protobuf hands back bytes for a string that is not UTF-8
            raise InputError(f"tensor '{tensor.name}': external data location {location!r} is not UTF-8 text",
                             stage=STAGE)
        where = f"tensor '{tensor.name}': external data location '{location}'"
        if not location:
            raise InputError(f"{where} is empty", stage=STAGE)
        if "\0" in location:
            raise InputError(f"{where!r} contains a NUL byte", stage=STAGE)
        rel = Path(location)
        drive = len(location) > 1 and location[1] == ":"  # C:\... is absolute on Windows
        if rel.is_absolute() or location.startswith(("/", "\\")) or drive:
            raise InputError(f"{where} is an absolute path; external data must sit in the model's "
                             "folder (relative path)", stage=STAGE)
        if ".." in rel.parts or ".." in location.replace("\\", "/").split("/"):
            raise InputError(f"{where} contains '..'; external data must sit in the model's folder",
                             stage=STAGE)
        target = Path(os.path.realpath(root / rel))
        if root != target and root not in target.parents:
            raise InputError(f"{where} resolves outside the model's folder ({target}), e.g. through a "
                             "symlink; copy the data next to the model", stage=STAGE)
        if not target.is_file():
            raise InputError(f"{where} does not exist in the model's folder", stage=STAGE)


def _check(model: Any, path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as e:
        raise InputError(f"{path}: invalid ONNX model: {_first_line(e)}", stage=STAGE) from None


def opset_of(model: Any) -> int:
    """The model's default-domain opset version."""
    for entry in model.opset_import:
        if entry.domain in _ONNX_DOMAINS:
            return int(entry.version)
    raise InputError("ONNX model imports no default-domain (ai.onnx) opset", stage=STAGE)


def _convert_opset(model: Any, path: Path) -> Any:
    from onnx import helper, version_converter

    low, high = SUPPORTED_OPSETS
    version = opset_of(model)
    if low <= version <= high:
        return model
    log.info("%s: opset %d is outside %d..%d; converting to %d", path, version, low, high, CONVERT_TO_OPSET)
    try:
        converted = version_converter.convert_version(model, CONVERT_TO_OPSET)
        # The converter keeps the old IR version; IR < 4 wants every initializer listed as a graph input,
        # which folding (and ONNX Runtime's quantizer) drop, so raise it to what the new opset needs.
        converted.ir_version = max(converted.ir_version, helper.find_min_ir_version_for(converted.opset_import))
        _check(converted, path)
    except (RuntimeError, ValueError, InputError) as e:
        raise InputError(f"{path}: opset {version} is outside the supported range {low}..{high} and "
                         f"could not be converted to {CONVERT_TO_OPSET} ({_first_line(e)}); re-export "
                         f"the model with an opset in {low}..{high}", stage=STAGE) from None
    return converted


def fix_batch(model: Any, batch: int = 1, *, where: str = "model") -> None:
    """Set a dynamic first dimension of the graph's inputs and outputs to ``batch`` (in place).

    Any other dynamic dimension is refused: edge targets need static shapes.
    """
    initializers = {t.name for t in model.graph.initializer}
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        for i, dim in enumerate(dims):
            static = dim.HasField("dim_value") and dim.dim_value > 0
            if static:
                continue
            if i == 0:
                dim.Clear()
                dim.dim_value = batch
            elif value in model.graph.input:
                raise InputError(f"{where}: input '{value.name}' has a dynamic dimension {i} "
                                 f"('{dim.dim_param or '?'}'); only the batch may be dynamic, export "
                                 "the model with static shapes", stage=STAGE)
    # value_info may hold the old symbolic batch; inference recomputes it from the fixed inputs.
    del model.graph.value_info[:]


def _infer_shapes(model: Any, path: Path) -> Any:
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError) as e:
        raise InputError(f"{path}: shape inference failed: {_first_line(e)}", stage=STAGE) from None


def fold(model: Any, *, where: str = "model") -> Any:
    """Fold constants and shape arithmetic with onnxslim; the result must match ONNX Runtime.

    Exporters leave ``Shape -> Gather -> Concat -> Reshape`` chains, ``ConstantOfShape`` and weight
    casts in the graph; onnxslim (a kept library, not hand-written passes) evaluates them once so
    that both the lowering and the ONNX Runtime / OpenVINO quantizers see static operators. The
    folded graph is checked against the original in ONNX Runtime on random inputs.
    """
    import onnxslim

    try:
        # FusionGemm turns a 3-D MatMul+Add into Reshape(batch*rows) -> Gemm -> Reshape, which moves
        # the batch axis; the lowering keeps it as MatMul+Add (a Dense layer), the runtimes fuse it.
        folded = onnxslim.slim(model, skip_fusion_patterns=["FusionGemm"])
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AssertionError) as e:
        log.warning("%s: onnxslim could not fold the graph (%s); using it unfolded", where, _first_line(e))
        return model
    # Fusions reorder float sums (Conv+BN); a tolerance of 1e-5 of the output range bounds that.
    try:
        check_equal(model, folded, tolerance=FOLD_TOLERANCE)
    except _ort_errors() as e:  # e.g. a custom-domain op: OpenVINO may still take the graph unfolded
        log.warning("%s: ONNX Runtime cannot run the model (%s); not folding it", where, _first_line(e))
        return model
    return _infer_shapes(folded, Path(where))


def _ort_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's own exception classes (they derive from Exception only)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    return (ort_state.Fail, ort_state.InvalidGraph, ort_state.InvalidArgument, ort_state.NotImplemented,
            ort_state.RuntimeException)


def load(path: str | Path, *, trust_model: bool = False, lower: bool = True) -> Any:
    """Read an ONNX file safely, fold it, and lower it to a float ``tf_keras`` model (``LoadedModel``).

    ``lower=False`` skips the Keras lowering (``keras_model`` is None): ONNX Runtime and OpenVINO
    targets quantize the folded ONNX graph itself. ``trust_model`` is accepted for symmetry with
    Keras loading; ONNX files carry no code, and external data is always confined to the model's folder.
    """
    original = read(path)
    _check_finite(original, path)
    model = fold(original, where=str(path))
    notes = [f"ONNX opset {opset_of(model)}; folded by onnxslim: {len(original.graph.node)} -> "
             f"{len(model.graph.node)} nodes"]
    keras_model = None
    if lower:
        keras_model = lower_checked(model)
        notes.append("lowered to tf_keras")
    return LoadedModel(keras_model, str(path), "onnx", signature(model.graph.input, model),
                       signature(model.graph.output, model), onnx_model=model, notes=notes)


def lower_checked(model: Any) -> Any:
    """The Keras lowering of a folded ONNX model, checked against ONNX Runtime on random inputs."""
    keras_model = onnx_lower.lower(model)
    onnx_lower.check(model, keras_model)
    return keras_model


def _check_finite(model: Any, path: str | Path) -> None:
    """NaN or inf in a weight poisons calibration ranges and every output: a corrupt file."""
    import numpy as np
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        try:
            values = numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as e:
            raise InputError(f"{path}: initializer '{tensor.name}' is unreadable: {_first_line(e)}",
                             stage=STAGE) from None
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise InputError(f"{path}: initializer '{tensor.name}' contains NaN or inf; corrupt model", stage=STAGE)


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
