"""Translate a Keras 3 Sequential / Functional config into a ``tf_keras`` one and build it.

The two formats differ in a few places, each handled here:

- ``InputLayer`` has ``batch_shape`` (Keras 3) instead of ``batch_input_shape``;
- dtype policies are ``{"class_name": "DTypePolicy", "config": {"name": ...}}`` dicts, ``tf_keras``
  takes the policy name;
- initializers, regularizers and constraints carry ``module`` / ``registered_name`` and, for some
  classes, options ``tf_keras`` does not know (``input_axes``); the unknown ones are dropped when unset;
- inbound nodes are ``{"args": [...], "kwargs": {...}}`` with ``__keras_tensor__`` entries whose
  ``keras_history`` is ``[layer, node, tensor]``; ``tf_keras`` wants ``[[layer, node, tensor, kwargs]]``;
- a single model input or output is ``[name, 0, 0]`` rather than a list of them, and a nested model
  with its own InputLayer numbers its nodes from 0 in Keras 3 and from 1 in tf_keras;
- operations on tensors (``x + 3.0``) are Keras 3 ``ops`` nodes; tf_keras saves the same expression
  as a ``TFOpLambda`` layer naming a TensorFlow function.

A layer option ``tf_keras`` does not accept is dropped only when it is unset (``None``/``False``) or
has Keras 3's default, since it then changes nothing; renamed options and activations are renamed
back; any other value, and any class or activation ``tf_keras`` lacks, makes the layer "not
rebuildable", and the error names it. The output check in :mod:`edgec.frontend.keras.keras3` catches what a
translation could still get wrong.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from edgec.core.errors import InputError
from edgec.core.tf import keras, keras3

STAGE = "load"
_MODELS = ("Sequential", "Functional", "Model")
# Options Keras 3 renamed: (class, Keras 3 name) -> tf_keras name.
_RENAMED = {("LeakyReLU", "negative_slope"): "alpha"}
# Values that mean what tf_keras does anyway for a layer that lacks the option (its layers are NHWC).
_NEUTRAL = {"data_format": "channels_last"}
# Keyword arguments every tf_keras layer takes through ``Layer.__init__(**kwargs)``.
_LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
                 "batch_size", "weights", "activity_regularizer", "autocast", "implementation"}
_NO_DEFAULT = object()
# Activation names: Keras 3's silu is tf_keras's swish; hard_sigmoid is relu6(x + 3) / 6 in Keras 3
# but clip(0.2 x + 0.5) in tf_keras (checked: they differ by up to 0.067).
_ACTIVATION_RENAMED = {"silu": "swish"}
_ACTIVATION_DIFFERS = {"hard_sigmoid"}
# Keras 3 activations a standalone Activation layer of a functional model is rebuilt from (see _expand).
_EXPANDED = {"relu6", "hard_sigmoid", "hard_silu", "hard_swish"}
# Keras 3 operations on tensors in a functional model (e.g. hard-sigmoid's ``x + 3.0`` in MobileNetV3)
# -> the TensorFlow function tf_keras's TFOpLambda calls for the same expression.
_OPS = {("keras.src.ops.numpy", "Add"): "math.add", ("keras.src.ops.numpy", "Subtract"): "math.subtract",
        ("keras.src.ops.numpy", "Multiply"): "math.multiply", ("keras.src.ops.numpy", "Divide"): "math.truediv",
        ("keras.src.ops.numpy", "TrueDivide"): "math.truediv", ("keras.src.ops.numpy", "Maximum"): "math.maximum",
        ("keras.src.ops.numpy", "Minimum"): "math.minimum"}


class _NotRebuildable(Exception):
    """A layer that has no faithful ``tf_keras`` equivalent: (layer name, reason)."""


def rebuild(class_name: str, config: dict, path: Path) -> Any:
    """Build the ``tf_keras`` model for a Keras 3 model config (``model.get_config()``)."""
    k2 = keras()
    try:
        translated = _model_config(class_name, config, k2)
    except _NotRebuildable as e:
        name, reason = e.args
        raise InputError(f"{path}: layer '{name}' cannot be rebuilt in tf_keras ({reason}), which pruning, "
                         "clustering and the TFLite converter need; replace it with a built-in Keras 2 layer or "
                         "export the model to ONNX", stage=STAGE) from None
    try:
        if class_name == "Sequential":
            return k2.Sequential.from_config(translated)
        return k2.Model.from_config(translated)
    except (ValueError, TypeError, KeyError) as e:
        raise InputError(f"{path}: the Keras 3 model cannot be rebuilt in tf_keras ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]})", stage=STAGE) from None


def _model_config(class_name: str, config: dict, k2) -> dict:
    out = {"name": config.get("name"), "trainable": config.get("trainable", True)}
    if class_name == "Sequential":
        out["layers"] = [_layer(entry, k2, functional=False) for entry in config["layers"]]
        if config.get("build_input_shape") is not None:
            out["build_input_shape"] = config["build_input_shape"]
        return out
    skip = {entry["config"].get("name"): 1 for entry in config["layers"] if _has_own_input(entry)}
    out["layers"] = [layer for entry in config["layers"] for layer in _functional_layers(entry, k2, skip)]
    out["input_layers"] = _endpoints(config["input_layers"], skip)
    out["output_layers"] = _endpoints(config["output_layers"], skip)
    return out


def _has_own_input(entry: dict) -> bool:
    """A nested model with its own InputLayer: tf_keras numbers its nodes from 1 (node 0 is internal)
    where Keras 3 numbers them from 0, so references to it are shifted by one."""
    if entry.get("class_name") == "Functional":
        return True
    layers = entry.get("config", {}).get("layers") if entry.get("class_name") == "Sequential" else None
    return bool(layers) and layers[0].get("class_name") == "InputLayer"


def _history(history: list, skip: dict) -> list:
    name, node, index = history
    return [name, node + skip.get(name, 0), index]


def _endpoints(value: list | dict, skip: dict | None = None) -> list | dict:
    """``[name, node, tensor]`` (a single endpoint in Keras 3), a list of them or a dict of them (named
    outputs; tf_keras keeps the structure) -> a list or dict of them."""
    if isinstance(value, dict):
        return {key: _history(list(v), skip or {}) for key, v in value.items()}
    if value and isinstance(value[0], str):
        value = [value]
    return [_history(list(v), skip or {}) for v in value]


def _layer(entry: dict, k2, *, functional: bool, skip: dict | None = None) -> dict:
    cls = entry["class_name"]
    config = entry["config"]
    name = str(config.get("name", "?"))
    if cls in _MODELS:
        inner = {"class_name": "Functional" if cls != "Sequential" else "Sequential",
                 "config": _model_config(cls, config, k2)}
    elif str(entry.get("module", "")).startswith("keras.src.ops."):
        if not functional or (entry.get("module"), cls) not in _OPS:
            raise _NotRebuildable(name, f"Keras 3 operation '{cls}' ({entry.get('module')}) has no tf_keras "
                                        "layer equivalent")
        return _op_layer(entry, name, _OPS[entry["module"], cls], skip or {})
    else:
        layer_class = getattr(k2.layers, cls, None)
        if layer_class is None or entry.get("module") not in (None, "keras", "keras.layers") or \
                entry.get("registered_name") not in (None, cls):
            raise _NotRebuildable(name, f"tf_keras has no built-in layer '{cls}'")
        inner = {"class_name": cls, "config": _layer_options(cls, config, layer_class, name, k2)}
    if functional:
        inner["name"] = entry.get("name", name)
        inner["inbound_nodes"] = [_node(node, name, skip or {}) for node in entry.get("inbound_nodes", [])]
    return inner


def _functional_layers(entry: dict, k2, skip: dict) -> list[dict]:
    """One Keras 3 layer -> its tf_keras layer, or the chain of built-in layers that computes a Keras 3
    activation tf_keras lacks (``Activation("hard_silu")`` in MobileNetV3)."""
    activation = entry.get("config", {}).get("activation")
    if entry.get("class_name") != "Activation" or activation not in _EXPANDED:
        return [_layer(entry, k2, functional=True, skip=skip)]
    name = str(entry["config"].get("name"))
    nodes = entry.get("inbound_nodes", [])
    if len(nodes) != 1 or len(nodes[0].get("args", [])) != 1 or not _is_tensor(nodes[0]["args"][0]):
        raise _NotRebuildable(name, f"activation '{activation}' is rebuilt from several tf_keras layers, which "
                                    "needs the layer to be called once on one tensor")
    source = _history(nodes[0]["args"][0]["config"]["keras_history"], skip)
    return _expand(activation, name, source)


def _expand(activation: str, name: str, source: list) -> list[dict]:
    """relu6 = ReLU(6); hard_sigmoid = relu6(x + 3) / 6; hard_silu = hard_swish = x * hard_sigmoid(x),
    as Keras 3 defines them; the last layer keeps the original name, so later layers find it."""
    def op(layer: str, function: str, after: list, y) -> dict:
        return {"class_name": "TFOpLambda", "name": layer, "inbound_nodes": [[*after, {"y": y, "name": None}]],
                "config": {"name": layer, "trainable": False, "dtype": "float32", "function": function}}

    def relu6(layer: str, after: list) -> dict:
        return {"class_name": "ReLU", "name": layer, "inbound_nodes": [[[*after, {}]]],
                "config": {"name": layer, "trainable": False, "dtype": "float32", "max_value": 6.0}}

    if activation == "relu6":
        return [relu6(name, source)]
    chain = [op(f"{name}__plus3", "math.add", source, 3.0), relu6(f"{name}__relu6", [f"{name}__plus3", 0, 0])]
    if activation == "hard_sigmoid":
        return [*chain, op(name, "math.truediv", [f"{name}__relu6", 0, 0], 6.0)]
    return [*chain, op(f"{name}__div6", "math.truediv", [f"{name}__relu6", 0, 0], 6.0),
            op(name, "math.multiply", [f"{name}__div6", 0, 0], source)]


def _op_layer(entry: dict, name: str, function: str, skip: dict) -> dict:
    """A Keras 3 binary operation on a tensor (``x + 3.0``, ``x * y``) -> tf_keras's ``TFOpLambda``.

    ``TFOpLambda`` names a TensorFlow API function (``math.add``), not code from the file, and is what
    tf_keras itself saves for the same expression; its second operand is a keyword argument, a
    number or a tensor reference ``[layer, node, tensor]``.
    """
    nodes = []
    for node in entry.get("inbound_nodes", []):
        args = node.get("args", [])
        if len(args) != 2 or node.get("kwargs") or not _is_tensor(args[0]):
            raise _NotRebuildable(name, f"operation {function} is called as {len(args)} arguments with a "
                                        "tensor first; only that form has a tf_keras equivalent")
        other = args[1]
        if _is_tensor(other):
            other = _history(other["config"]["keras_history"], skip)
        elif not isinstance(other, (int, float)):
            raise _NotRebuildable(name, f"operation {function} has a non-numeric operand")
        # TFOpLambda keeps its input's structure in the config: one tensor is one flat entry, not a list.
        nodes.append([*_history(args[0]["config"]["keras_history"], skip), {"y": other, "name": None}])
    return {"class_name": "TFOpLambda", "name": name, "inbound_nodes": nodes,
            "config": {"name": name, "trainable": False, "dtype": "float32", "function": function}}


def _accepted(layer_class) -> set[str]:
    """Option names a tf_keras layer class accepts, through its own or its parents' ``__init__``."""
    names = set(_LAYER_KWARGS)
    for klass in inspect.getmro(layer_class):
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p for p in inspect.signature(init).parameters if p not in ("self", "args", "kwargs")}
    return names


def _layer_options(cls: str, config: dict, layer_class, name: str, k2) -> dict:
    config = dict(config)
    if cls == "InputLayer" and "batch_shape" in config:
        config["batch_input_shape"] = config.pop("batch_shape")
    accepted = _accepted(layer_class)
    out = {}
    for key, value in config.items():
        key = _RENAMED.get((cls, key), key)
        if key not in accepted:
            # An option tf_keras lacks is dropped only when it keeps the behaviour tf_keras has: unset,
            # or Keras 3's default (new Keras 3 options default to the old behaviour).
            if _unset(value) or _NEUTRAL.get(key) == value or _keras3_default(cls, key) == value:
                continue
            raise _NotRebuildable(name, f"option {key}={value!r} of {cls} has no tf_keras equivalent")
        if key.endswith("activation") and isinstance(value, str):
            value = _activation(key, value, name, k2)
        out[key] = _value(key, value, name, k2)
    return out


def _activation(key: str, value: str, name: str, k2) -> str:
    """A Keras 3 activation name -> the tf_keras name of the same function."""
    value = _ACTIVATION_RENAMED.get(value, value)
    if value in _ACTIVATION_DIFFERS or not hasattr(k2.activations, value):
        what = "computes a different function under that name in" if value in _ACTIVATION_DIFFERS else "is not in"
        raise _NotRebuildable(name, f"{key} '{value}' of Keras 3 {what} tf_keras")
    return value


def _unset(value: Any) -> bool:
    """``None`` or ``False`` (not ``0``, which can be a real setting)."""
    return value is None or value is False


def _keras3_default(cls: str, key: str) -> Any:
    """The default of option ``key`` in Keras 3's ``cls.__init__`` (JSON form), or a sentinel when none."""
    klass = getattr(keras3().layers, cls, None)
    for base in inspect.getmro(klass) if isinstance(klass, type) else ():
        init = base.__dict__.get("__init__")
        param = inspect.signature(init).parameters.get(key) if init is not None else None
        if param is not None and param.default is not inspect.Parameter.empty:
            return json.loads(json.dumps(param.default, default=str))
    return _NO_DEFAULT


def _value(key: str, value: Any, name: str, k2) -> Any:
    """Translate one option value: dtype policies to names, Keras 3 objects to tf_keras objects."""
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    cls, inner = value["class_name"], value["config"]
    if cls in ("DTypePolicy", "FloatDTypePolicy"):
        return inner["name"]
    for module in (k2.initializers, k2.regularizers, k2.constraints):
        klass = getattr(module, cls, None)
        if klass is not None and isinstance(klass, type):
            params = set(inspect.signature(klass.__init__).parameters) - {"self"}
            unknown = {k: v for k, v in inner.items() if k not in params and not _unset(v)}
            if unknown:
                raise _NotRebuildable(name, f"{key} {cls} options {unknown} have no tf_keras equivalent")
            return {"class_name": cls, "config": {k: v for k, v in inner.items() if k in params}}
    raise _NotRebuildable(name, f"{key} is a '{cls}', which tf_keras has no built-in equivalent for")


def _node(node: Any, layer: str, skip: dict | None = None) -> list:
    """One Keras 3 inbound node ``{"args", "kwargs"}`` -> tf_keras ``[[layer, node, tensor, kwargs], ...]``."""
    if isinstance(node, list):  # already the Keras 2 form
        return node
    args, kwargs = node.get("args", []), node.get("kwargs", {}) or {}
    if len(args) != 1:
        raise _NotRebuildable(layer, f"it is called with {len(args)} positional arguments; tf_keras configs "
                                     "take one (a tensor or a list of tensors)")
    if any(_is_tensor(v) for v in kwargs.values()):
        raise _NotRebuildable(layer, "it takes tensors as keyword arguments")
    first = args[0]
    tensors = first if isinstance(first, list) else [first]
    if not all(_is_tensor(t) for t in tensors):
        raise _NotRebuildable(layer, "it is called on something other than tensors")
    return [[*_history(t["config"]["keras_history"], skip or {}), dict(kwargs) if i == 0 else {}]
            for i, t in enumerate(tensors)]


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"
