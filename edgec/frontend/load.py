"""Front end: load a trained model safely and record its signature.

Keras models (``.keras``, ``.h5``, SavedModel folders) are read through ``tf_keras`` (Keras 2).
Before anything is deserialized, the saved configuration is scanned: ``Lambda`` layers (which carry
Python code) and classes that are not built-in Keras layers are refused unless ``trust_model`` is
set, because loading them would run or need code from the model file. ONNX models go through
:mod:`edgec.frontend.onnx.read`; files written by Keras 3 and SavedModels without a Keras graph (Keras 3's
``model.export()``) go through :mod:`edgec.frontend.keras.keras3`.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from edgec.core.errors import ZIP_ERRORS, InputError
from edgec.core.tf import keras
from edgec.frontend.keras import checks as keras_checks
from edgec.frontend.keras import keras3 as load_keras3
from edgec.frontend.model import LoadedModel
from edgec.frontend.onnx import read as load_onnx

log = logging.getLogger(__name__)

STAGE = "load"


def kind_of(path: Path) -> str:
    """Classify a model path by its form; an unknown form is an :class:`InputError`."""
    if not path.exists():
        raise InputError(f"model '{path}' not found", stage=STAGE)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise InputError(f"{path}: a folder but not a SavedModel (no saved_model.pb)", stage=STAGE)
    if not path.is_file():  # a FIFO or a device (/dev/zero) would block or never end
        raise InputError(f"{path}: not a regular file", stage=STAGE)
    suffix = path.suffix.lower()
    kinds = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".onnx": "onnx"}
    if suffix not in kinds:
        raise InputError(f"{path}: unsupported model format '{suffix}' (use .keras, .h5, a SavedModel "
                         "folder or .onnx)", stage=STAGE)
    return kinds[suffix]


def load(path: str | Path, *, trust_model: bool = False, lower: bool = True) -> LoadedModel:
    """Load a Keras or ONNX model file, refusing unsafe content unless ``trust_model``.

    ``lower=False`` keeps an ONNX model as ONNX (no Keras lowering); Keras models ignore it.
    """
    path = Path(path)
    kind = kind_of(path)
    if kind == "onnx":
        return load_onnx.load(path, trust_model=trust_model, lower=lower)
    keras3 = _load_keras3(path, kind, trust_model)
    if keras3 is not None:
        return keras3
    config = _saved_config(path, kind)
    if config is not None:
        _check_layers(config, path, trust_model)
    model = _load_keras(path, kind, trust_model)
    if not getattr(model, "inputs", None):
        raise InputError(f"{path}: the model was saved before it was built (no inputs); give it an Input "
                         "layer or call it once before saving", stage=STAGE)
    if config is None:  # SavedModel: the config is only reachable after loading
        _check_layers(json.loads(model.to_json()), path, trust_model)
    keras_checks.check_weights(model, path)
    return LoadedModel(model, str(path), kind, _signature(model.input_names, model.inputs),
                       _signature(model.output_names, model.outputs))


def _load_keras3(path: Path, kind: str, trust_model: bool) -> LoadedModel | None:
    """Keras 3 files and Keras-less SavedModels (see :mod:`edgec.frontend.keras.keras3`); None for the others."""
    if kind == "savedmodel" and load_keras3.is_plain_savedmodel(path):
        model = load_keras3.load_savedmodel(path)
        keras_checks.check_weights(model, path)
        return LoadedModel(model, str(path), kind, _signature(model.input_names, model.inputs),
                           _signature(model.output_names, model.outputs),
                           notes=["SavedModel without a Keras graph: its serving signature is compiled as one "
                                  "layer (no compression stages)"])
    if kind not in ("keras", "h5"):
        return None
    config = _saved_config(path, kind)  # corrupt files are refused here, before the version is read
    if not load_keras3.is_keras3(path, kind):
        return None
    load_keras3.check_layers(config, path, trust_model)
    model, original, version = load_keras3.load(path, kind, trust_model=trust_model)
    keras_checks.check_weights(model, path)
    return LoadedModel(model, str(path), kind, _signature(model.input_names, model.inputs),
                       _signature(model.output_names, model.outputs), keras3_model=original,
                       notes=[f"saved by Keras {version}; rebuilt in tf_keras"])


def _saved_config(path: Path, kind: str) -> dict | None:
    if kind == "keras":
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                if "config.json" not in names:
                    raise InputError(f"{path}: not a Keras archive (no config.json)", stage=STAGE)
                keras_checks.check_archive(z, path)
                meta = keras_checks.json_member(z, "metadata.json", path) if "metadata.json" in names else {}
                config = keras_checks.json_member(z, "config.json", path)
        except (*ZIP_ERRORS, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise InputError(f"{path}: corrupt or truncated .keras file ({type(e).__name__}: {e})",
                             stage=STAGE) from None
        if not isinstance(meta, dict) or not isinstance(config, dict):
            raise InputError(f"{path}: corrupt .keras file (metadata.json and config.json must hold JSON "
                             "objects)", stage=STAGE)
        return config
    if kind == "h5":
        return _h5_config(path)
    return None


def _h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise InputError(f"{path}: HDF5 file holds weights only (no model_config); save the whole "
                                 "model", stage=STAGE)
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, TypeError) as e:
        raise InputError(f"{path}: corrupt or truncated HDF5 file ({type(e).__name__}: {e})", stage=STAGE) from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: corrupt HDF5 file (model_config is not a JSON object)", stage=STAGE)
    return config


def _layer_classes(config: Any) -> list[tuple[str, str]]:
    """(class_name, layer name) of every layer in a (possibly nested) Keras config."""
    found = []
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            found.append((config["class_name"], str(config["config"].get("name", "?"))))
        for value in config.values():
            found.extend(_layer_classes(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_layer_classes(value))
    return found


# tf_keras records `x + 3`, `x * y` on Keras tensors as TFOpLambda layers naming a TF function
# (keras.applications' MobileNetV3 hard-swish does). Any TF function could be named (tf.io.write_file
# too), so only pure elementwise arithmetic passes without --trust-model.
TF_OP_LAMBDAS = {"TFOpLambda"}
SAFE_TF_OPS = {"__operators__.add", "__operators__.sub", "__operators__.truediv", "math.add", "math.subtract",
               "math.multiply", "math.truediv", "math.divide", "math.maximum", "math.minimum", "nn.relu",
               "nn.relu6", "math.sigmoid", "math.tanh"}


def _tf_op_functions(config) -> dict[str, object]:
    """Layer name -> the TF function a TFOpLambda layer of a (possibly nested) Keras config calls."""
    found = {}
    if isinstance(config, dict):
        # A corrupt config may hold any JSON there (a list is unhashable): only a string is a TFOpLambda.
        cls = config.get("class_name")
        if isinstance(cls, str) and cls in TF_OP_LAMBDAS and isinstance(config.get("config"), dict):
            found[str(config["config"].get("name", "?"))] = config["config"].get("function")
        for value in config.values():
            found.update(_tf_op_functions(value))
    elif isinstance(config, list):
        for value in config:
            found.update(_tf_op_functions(value))
    return found


def _check_layers(config: dict, path: Path, trust_model: bool) -> None:
    keras_checks.check_graph(config, path)
    if trust_model:
        return

    k = keras()
    builtin = set(dir(k.layers)) | set(dir(k.initializers)) | set(dir(k.regularizers)) | set(
        dir(k.constraints)) | set(dir(k.activations)) | {"Functional", "Sequential", "Model", "TensorShape",
                                                        "__tuple__", "__tensor__", "DTypePolicy", "Policy"}
    try:
        # compile_config (optimizer, loss, metrics of a model saved after compile()) is never built:
        # load_model(compile=False). Scanning it would refuse every trained model for its 'Adam'.
        layers = _layer_classes({key: value for key, value in config.items() if key != "compile_config"})
    except RecursionError:
        raise InputError(f"{path}: model config nested too deeply; refused", stage=STAGE) from None
    tf_ops = _tf_op_functions(config)
    for cls, name in layers:
        if not isinstance(cls, str):
            raise InputError(f"{path}: layer '{name}' has class_name {cls!r}, not a string; corrupt model "
                             "config", stage=STAGE)
        function = tf_ops.get(name)
        if cls in TF_OP_LAMBDAS and isinstance(function, str) and function in SAFE_TF_OPS:
            continue
        if cls.startswith("__"):  # Keras 3 serializes tensors and tuples as "__keras_tensor__" etc.
            continue
        if cls == "Lambda":
            raise InputError(f"{path}: layer '{name}' is a Lambda layer, which runs Python code stored in "
                             "the model; refused (pass --trust-model if you trust this file)", stage=STAGE)
        if cls in TF_OP_LAMBDAS:
            raise InputError(f"{path}: layer '{name}' calls TF function {tf_ops.get(name)!r}, not elementwise "
                             "arithmetic; refused (pass --trust-model if you trust this file)", stage=STAGE)
        if cls not in builtin:
            raise InputError(f"{path}: layer '{name}' uses custom class '{cls}', not a built-in Keras layer; "
                             "refused (pass --trust-model to load it with its code importable)", stage=STAGE)


def _load_keras(path: Path, kind: str, trust_model: bool):

    k = keras()
    try:
        if kind == "keras":
            return k.models.load_model(path, compile=False, safe_mode=not trust_model)
        return k.models.load_model(path, compile=False)
    except InputError:
        raise
    except Exception as e:  # tf_keras raises many types for unreadable or Keras 3-only files
        raise InputError(_load_failure(path, kind, e), stage=STAGE) from None


def _load_failure(path: Path, kind: str, error: Exception) -> str:
    text = " ".join(str(error).split("Full object config")[0].split())[:200]
    return f"{path}: cannot load the model ({type(error).__name__}: {text})"


def _signature(names, tensors) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape without batch, dtype) for Keras input/output tensors."""
    out = {}
    for name, t in zip(names, tensors):
        shape = tuple(-1 if d is None else int(d) for d in t.shape[1:])
        if -1 in shape:
            raise InputError(f"'{name}' has dynamic shape {list(shape)}: only the batch may be dynamic; export "
                             "the model with static shapes", stage=STAGE)
        out[name] = (shape, t.dtype.name if hasattr(t.dtype, "name") else str(t.dtype))
    return out
