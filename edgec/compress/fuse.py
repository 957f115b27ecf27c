"""Graph fusion on a functional ``tf_keras`` model, before any compression.

Batch normalization is folded into the Conv2D / DepthwiseConv2D / Dense before it, and a following
ReLU / ReLU6 / Activation becomes that layer's activation. This runs first so that pruning masks and
clusters are applied to the weights that actually ship: if the TFLite converter folded the batch norm
later, it would rescale every output channel and the clusters and zeros would no longer be what was
asked for (zeros survive, but k cluster values per tensor become k values per channel times scales).

The rewrite edits the model's functional config (drop the fused layer, point its consumers at the
producer) and rebuilds it with ``Model.from_config``; weights are copied by layer name.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from edgec.core.errors import InputError
from edgec.core.tf import keras

log = logging.getLogger(__name__)

_FOLD_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")


def as_functional(model):
    """A Sequential model as a functional one over the same layers (config formats differ)."""
    k = keras()
    if isinstance(model, k.Sequential):
        return k.Model(model.inputs, model.outputs, name=model.name)
    if not getattr(model, "_is_graph_network", False):
        raise InputError(f"model {model.name!r} is a subclassed Keras model; fusion needs a functional "
                         "or Sequential model (rebuild it with the functional API)", stage="fuse")
    return model


def _consumers(config: dict) -> dict[str, list[str]]:
    """Layer name -> names of layers reading its output (model outputs count as a consumer)."""
    users: dict[str, list[str]] = {layer["name"]: [] for layer in config["layers"]}
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for ref in _node_refs(node):
                users[ref[0]].append(layer["name"])
    for ref in config["output_layers"]:
        users[ref[0]].append("<output>")
    return users


def _is_ref(value) -> bool:
    return (isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def _node_refs(node) -> list:
    """Every [layer_name, node_index, tensor_index, ...] reference in one inbound node.

    Layers serialize a node as a list of references; TFOpLambda (``tf.*`` ops in a functional model)
    serializes one reference directly and may hold more inside its call kwargs (``y=<tensor>``), so
    references are collected wherever they sit: a consumer missed here would be rewired wrongly.
    """
    if isinstance(node, dict):  # newer serialization: {"args": ..., "kwargs": ...}
        raise InputError("fusion does not understand this Keras config format", stage="fuse")
    found: list = []

    def walk(value) -> None:
        if _is_ref(value):
            found.append(value)
            if len(value) > 3:
                walk(value[3])
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(node)
    return found


def _single_input(layer_cfg: dict) -> str | None:
    """The name of the only layer feeding ``layer_cfg``, or None when it has several inputs/calls."""
    refs = _node_refs(layer_cfg["inbound_nodes"])
    if len(refs) != 1 or _is_ref(layer_cfg["inbound_nodes"][0]):  # one plain layer call only
        return None
    return refs[0][0]


def _activation_of(layer_cfg: dict) -> str | None:
    """The activation name a standalone activation layer is equivalent to, or None."""
    cls, cfg = layer_cfg["class_name"], layer_cfg["config"]
    if cls == "Activation" and isinstance(cfg.get("activation"), str):
        return cfg["activation"]
    if cls == "ReLU":
        plain = not cfg.get("negative_slope") and not cfg.get("threshold")
        if plain and cfg.get("max_value") is None:
            return "relu"
        if plain and cfg.get("max_value") is not None and float(cfg["max_value"]) == 6.0:
            return "relu6"
    return None


def _find_pair(config: dict, kinds) -> tuple[dict, dict] | None:
    """A (producer, follower) pair where the follower is the producer's only consumer."""
    by_name = {layer["name"]: layer for layer in config["layers"]}
    users = _consumers(config)
    for layer in config["layers"]:
        source = _single_input(layer)
        if source is None or not kinds(layer):
            continue
        prod = by_name[source]
        if (prod["class_name"] in _FOLD_INTO and len(prod["inbound_nodes"]) == 1
                and users[source] == [layer["name"]]
                and prod["config"].get("activation", "linear") == "linear"):
            return prod, layer
    return None


def _remove(config: dict, follower: dict, producer: dict) -> None:
    """Drop ``follower`` and rewire everything that read it to read ``producer``."""
    config["layers"] = [layer for layer in config["layers"] if layer["name"] != follower["name"]]
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for ref in _node_refs(node):
                if ref[0] == follower["name"]:
                    ref[0], ref[1], ref[2] = producer["name"], 0, 0
    for ref in config["output_layers"]:
        if ref[0] == follower["name"]:
            ref[0], ref[1], ref[2] = producer["name"], 0, 0


def _is_foldable_bn(layer_cfg: dict, model) -> bool:
    """A batch norm over the last (channel) axis only: the axis a kernel's output channels are on."""
    if layer_cfg["class_name"] != "BatchNormalization":
        return False
    axis = layer_cfg["config"].get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    rank = len(model.get_layer(layer_cfg["name"]).input_shape)
    return isinstance(axis, int) and axis % rank == rank - 1


def _fold_weights(kind: str, weights: list[np.ndarray], bn, bn_cfg: dict) -> list[np.ndarray]:
    """Kernel and bias of ``kind`` with the batch norm ``bn`` folded in."""
    params = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in bn.weights}
    var, mean = params["moving_variance"], params["moving_mean"]
    gamma = params.get("gamma", np.ones_like(var))
    beta = params.get("beta", np.zeros_like(var))
    scale = (gamma / np.sqrt(var + bn_cfg["epsilon"])).astype(np.float64)
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if len(weights) > 1 else np.zeros(scale.shape, np.float64)
    if kind == "DepthwiseConv2D":  # output channel c*mult + m of input channel c
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:  # Conv2D (kh, kw, in, out) and Dense (in, out): output channels are the last axis
        kernel = kernel * scale
    bias = (bias - mean) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def fuse(model) -> tuple[object, list[dict]]:
    """Fold batch norms and activations into the layers before them.

    Returns the rebuilt functional model (same input/output names) and the list of fusions done,
    each ``{"kind": "batchnorm"|"activation", "into": layer, "removed": layer, ...}``. The fused model
    computes the same function (up to float rounding) in inference mode.
    """
    k = keras()
    model = as_functional(model)
    config = copy.deepcopy(model.get_config())
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    fusions: list[dict] = []
    while True:
        pair = _find_pair(config, lambda cfg: _is_foldable_bn(cfg, model))
        if pair is not None:
            prod, bn = pair
            weights[prod["name"]] = _fold_weights(prod["class_name"], weights[prod["name"]],
                                                  model.get_layer(bn["name"]), bn["config"])
            prod["config"]["use_bias"] = True
            _remove(config, bn, prod)
            fusions.append({"kind": "batchnorm", "into": prod["name"], "removed": bn["name"]})
            continue
        pair = _find_pair(config, lambda cfg: _activation_of(cfg) is not None)
        if pair is None:
            break
        prod, act = pair
        prod["config"]["activation"] = _activation_of(act)
        _remove(config, act, prod)
        fusions.append({"kind": "activation", "into": prod["name"], "removed": act["name"],
                        "activation": prod["config"]["activation"]})
    if not fusions:
        return model, []
    custom = {layer.__class__.__name__: layer.__class__ for layer in model.layers}
    fused = k.Model.from_config(config, custom_objects=custom)
    for layer in fused.layers:
        layer.set_weights(weights[layer.name])
    log.info("fuse: %d fusions (%s)", len(fusions),
             ", ".join(f"{f['removed']}->{f['into']}" for f in fusions))
    return fused, fusions
