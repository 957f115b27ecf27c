"""Low-rank (SVD) factorization of Dense and 1x1 Conv2D layers.

A kernel ``W`` (in x out) becomes ``A @ B`` with ``A = U_r sqrt(S_r)`` (in x r) and
``B = sqrt(S_r) V_r^T`` (r x out): two layers, the first linear without bias, the second keeping the
bias and activation and the original name (so consumers and reports are unchanged). The rank is the
smallest that keeps ``energy`` of the squared singular values; a layer is only factorized where
``r * (in + out) < in * out``, i.e. where it saves parameters.
"""

from __future__ import annotations

import copy
import fnmatch
import logging

import numpy as np

from edgec.compress.fuse import as_functional
from edgec.core.errors import InputError
from edgec.core.tf import keras

log = logging.getLogger(__name__)


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest rank whose squared singular values hold at least ``energy`` of the total."""
    power = np.asarray(singular_values, np.float64) ** 2
    if power.sum() == 0:
        return 1
    cumulative = np.cumsum(power) / power.sum()
    return int(np.searchsorted(cumulative, energy - 1e-12) + 1)


def _factorizable(layer) -> bool:
    cls = layer.__class__.__name__
    if cls == "Dense":
        return True
    if cls == "Conv2D":
        cfg = layer.get_config()
        return tuple(cfg["kernel_size"]) == (1, 1) and cfg.get("groups", 1) == 1 and \
            tuple(cfg.get("dilation_rate", (1, 1))) == (1, 1)
    return False


def _selected(model, selectors: list[str] | None) -> list:
    layers = [layer for layer in model.layers if _factorizable(layer)]
    if selectors is None:
        return layers
    chosen = []
    for sel in selectors:
        hits = [layer for layer in layers if layer.name == sel or layer.__class__.__name__ == sel
                or fnmatch.fnmatchcase(layer.name, sel)]
        if not hits:
            raise InputError(f"low-rank layer selector {sel!r} matches no Dense or 1x1 Conv2D layer "
                             f"(candidates: {', '.join(layer.name for layer in layers) or 'none'})",
                             stage="low-rank")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _first_config(layer, rank: int) -> dict:
    """Config of the new first (projection) layer: linear, no bias, same strides/padding."""
    cfg = copy.deepcopy(layer.get_config())
    cfg.update(name=f"{layer.name}_lowrank", use_bias=False, activation="linear",
               activity_regularizer=None, bias_regularizer=None, bias_constraint=None)
    cfg["units" if "units" in cfg else "filters"] = rank
    return {"class_name": layer.__class__.__name__, "config": cfg, "name": cfg["name"]}


def _plan(model, energy: float, selectors) -> list[dict]:
    plans = []
    for layer in _selected(model, selectors):
        weights = layer.get_weights()
        kernel = weights[0]
        w2 = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)  # (in, out)
        u, s, vt = np.linalg.svd(w2, full_matrices=False)
        rank = rank_for_energy(s, energy)
        n_in, n_out = w2.shape
        before, after = n_in * n_out, rank * (n_in + n_out)
        if after >= before:
            continue
        root = np.sqrt(s[:rank])
        a = (u[:, :rank] * root).astype(np.float32).reshape(*kernel.shape[:-1], rank)
        b = (root[:, None] * vt[:rank]).astype(np.float32).reshape(*kernel.shape[:-2], rank, n_out)
        plans.append({"layer": layer, "rank": rank, "a": a, "b": b, "rest": weights[1:],
                      "report": {"name": layer.name, "rank": rank, "full_rank": int(min(n_in, n_out)),
                                 "energy": round(float(np.sum(s[:rank] ** 2) / max(np.sum(s ** 2), 1e-30)), 6),
                                 "params_before": before, "params_after": after}})
    return plans


def factorize(model, *, energy: float = 0.95, layers: list[str] | None = None) -> tuple[object, list[dict]]:
    """Factorize Dense / 1x1 Conv2D layers by SVD where it reduces parameters.

    Returns the rebuilt functional model and one report per factorized layer (name, rank, energy
    kept, kernel parameters before/after). Returns the model unchanged when nothing pays off.
    """
    if not 0.0 < energy <= 1.0:
        raise InputError(f"low-rank energy must be in (0, 1], got {energy}", stage="low-rank")
    model = as_functional(model)
    plans = _plan(model, energy, layers)
    if not plans:
        return model, []
    config = copy.deepcopy(model.get_config())
    by_name = {p["layer"].name: p for p in plans}
    new_layers = []
    for layer_cfg in config["layers"]:
        plan = by_name.get(layer_cfg["name"])
        if plan is not None:
            first = _first_config(plan["layer"], plan["rank"])
            first["inbound_nodes"] = layer_cfg["inbound_nodes"]
            layer_cfg["inbound_nodes"] = [[[first["name"], 0, 0, {}]]]
            layer_cfg.pop("build_config", None)  # it records the old input width
            if layer_cfg["class_name"] == "Conv2D":  # the projection already applied the strides
                layer_cfg["config"].update(strides=(1, 1), padding="valid")
            new_layers.append(first)
        new_layers.append(layer_cfg)
    config["layers"] = new_layers
    custom = {layer.__class__.__name__: layer.__class__ for layer in model.layers}
    rebuilt = keras().Model.from_config(config, custom_objects=custom)
    for layer in rebuilt.layers:
        name = layer.name.removesuffix("_lowrank")
        if name in by_name:
            plan = by_name[name]
            layer.set_weights([plan["a"]] if layer.name != name else [plan["b"], *plan["rest"]])
        else:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    log.info("low-rank: %s", ", ".join(f"{p['report']['name']} rank {p['rank']}" for p in plans))
    return rebuilt, [p["report"] for p in plans]
