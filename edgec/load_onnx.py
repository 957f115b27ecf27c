"""Front end for ONNX: read a model file safely, check it, fix its batch, and lower it to Keras.

Safety comes first because an ONNX file can point at arbitrary files through *external data*
(``location`` entries on tensors). Every location is checked before any byte of it is read: it must be
a relative path without ``..``, must resolve (symlinks followed) to a regular file inside the model's
own folder, and the model is parsed with ``load_external_data=False`` so that ONNX itself never opens a
path we have not checked.

After loading: ``onnx.checker.check_model(full_check=True)`` (which includes strict shape inference),
the opset is brought into :data:`SUPPORTED_OPSETS` with ``onnx.version_converter`` or refused, a
dynamic batch dimension is fixed to 1 (every edge target wants static shapes), and shapes are
inferred so that the lowering knows every tensor's rank.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .errors import InputError

log = logging.getLogger(__name__)

STAGE = "load"
# Opsets whose operator semantics the lowering and both runtimes (ORT 1.2x, OpenVINO 202x) share.
SUPPORTED_OPSETS = (13, 21)
# Where a model outside the range is converted to: the middle of the range, well supported by all.
CONVERT_TO_OPSET = 17
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
    from onnx import version_converter

    low, high = SUPPORTED_OPSETS
    version = opset_of(model)
    if low <= version <= high:
        return model
    log.info("%s: opset %d is outside %d..%d; converting to %d", path, version, low, high, CONVERT_TO_OPSET)
    try:
        converted = version_converter.convert_version(model, CONVERT_TO_OPSET)
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


def signature(values: Any, model: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape without batch, numpy dtype name) for graph inputs/outputs (initializers skipped)."""
    from onnx import helper

    initializers = {t.name for t in model.graph.initializer}
    out = {}
    for v in values:
        if v.name in initializers:
            continue
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        out[v.name] = (shape[1:], str(helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return out


def load(path: str | Path, *, trust_model: bool = False) -> Any:
    """Read an ONNX file safely and lower it to a float ``tf_keras`` model (``LoadedModel``).

    ``trust_model`` is accepted for symmetry with Keras loading; ONNX files carry no code, and
    external data is always confined to the model's folder.
    """
    from . import keras_checks, onnx_lower
    from .load import LoadedModel

    model = read(path)
    keras_model = onnx_lower.lower(model)
    keras_checks.check_weights(keras_model, Path(path))
    onnx_lower.check(model, keras_model)
    return LoadedModel(keras_model, str(path), "onnx", signature(model.graph.input, model),
                       signature(model.graph.output, model), onnx_model=model,
                       notes=[f"ONNX opset {opset_of(model)} lowered to tf_keras"])


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
