"""Magnitude pruning with TF-MOT: unstructured (constant or polynomial schedule) and 2:4 structured.

``prune`` wraps the chosen layers with ``prune_low_magnitude``; the masks are then applied either by
recovery fine-tuning (with :func:`callbacks`) or at once by :func:`apply_masks` (one-shot pruning, no
training). :func:`strip` removes the wrappers before export, leaving plain layers whose kernels hold
the zeros. Run :func:`edgec.compress.fuse.fuse` first so batch-norm folding cannot disturb the masks.
"""

from __future__ import annotations

import fnmatch
import logging

import numpy as np

from edgec.core.errors import InputError
from edgec.core.tf import keras, tensorflow

log = logging.getLogger(__name__)

# Layers with a kernel that become CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED in TFLite.
KERNEL_LAYERS = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Dense")
# Layers whose kernel TF-MOT prunes: its registry lists DepthwiseConv2D with no prunable weights.
PRUNABLE = ("Conv1D", "Conv2D", "Dense")
# 2:4 groups run along the kernel's input-channel axis, the last axis of the TFLite weight
# (out, kh, kw, in) / (out, in); a depthwise kernel has no such reduction axis.
PRUNABLE_2_4 = ("Conv2D", "Dense")


def tfmot():
    """The ``tensorflow_model_optimization`` module, imported after Keras 2 is selected."""
    tensorflow()
    import tensorflow_model_optimization as mot

    return mot


def kernel_layers(model, kinds=KERNEL_LAYERS) -> list:
    """Layers of ``kinds`` in the model's (topological) layer order."""
    return [layer for layer in model.layers if layer.__class__.__name__ in kinds]


def select_layers(model, selectors: list[str] | None, *, kinds, keep_first_last: bool,
                  stage: str) -> list[str]:
    """Names of the layers to compress.

    ``selectors`` are layer names, layer class names (``Dense``) or glob patterns (``fc*``); None
    selects every layer of ``kinds`` except (when ``keep_first_last``) the first and the last such
    layer, which are usually the most sensitive and the smallest. A selector that matches no layer of
    ``kinds`` is an :class:`InputError`.
    """
    candidates = kernel_layers(model)
    if selectors is None:
        chosen = kernel_layers(model, kinds)
        chosen = chosen[1:-1] if keep_first_last else chosen
        return [layer.name for layer in chosen]
    names: list[str] = []
    for sel in selectors:
        hits = [layer for layer in candidates
                if layer.name == sel or layer.__class__.__name__ == sel or fnmatch.fnmatchcase(layer.name, sel)]
        usable = [layer for layer in hits if layer.__class__.__name__ in kinds]
        if not usable:
            what = (f"only {', '.join(sorted({h.__class__.__name__ for h in hits}))} layers it cannot handle"
                    if hits else "no layer")
            raise InputError(f"layer selector {sel!r} matches {what}; {stage} applies to "
                             f"{', '.join(kinds)} layers: {', '.join(c.name for c in candidates)}",
                             stage=stage)
        names += [layer.name for layer in usable if layer.name not in names]
    return names


def _schedule(*, sparsity: float, schedule: str, begin_step: int, end_step: int, frequency: int):
    sched = tfmot().sparsity.keras
    if schedule == "constant":
        return sched.ConstantSparsity(sparsity, begin_step=begin_step, frequency=frequency)
    if schedule == "polynomial":
        return sched.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=begin_step,
                                     end_step=max(end_step, begin_step + 1), frequency=frequency)
    raise InputError(f"unknown pruning schedule {schedule!r}; use 'constant' or 'polynomial'", stage="prune")


def prune(model, *, sparsity: float = 0.5, structure: str = "unstructured", schedule: str = "constant",
          layers: list[str] | None = None, keep_first_last: bool = True, end_step: int = 0,
          frequency: int = 100) -> tuple[object, list[str]]:
    """Wrap the selected layers of ``model`` for magnitude pruning.

    ``structure`` is ``"unstructured"`` (to ``sparsity``) or ``"2:4"`` (two zeros in every group of
    four input channels; ``sparsity`` is then implied, 0.5). ``end_step`` is the last training step of
    a polynomial schedule. Returns the wrapped model and the names of the pruned layers.
    """
    mot = tfmot()

    structured = structure not in (None, "", "unstructured", "none")
    if structured and structure != "2:4":
        raise InputError(f"unknown pruning structure {structure!r}; use 'unstructured' or '2:4'", stage="prune")
    if not structured and not 0.0 < sparsity < 1.0:
        raise InputError(f"pruning sparsity must be between 0 and 1 (exclusive), got {sparsity}", stage="prune")
    kinds = PRUNABLE_2_4 if structured else PRUNABLE
    names = select_layers(model, layers, kinds=kinds, keep_first_last=keep_first_last, stage="prune")
    if not names:
        log.warning("prune: no layer selected (the model has too few prunable layers)")
        return model, []
    kwargs = {"sparsity_m_by_n": (2, 4)} if structured else {}
    sched = _schedule(sparsity=0.5 if structured else sparsity, schedule="constant" if structured else schedule,
                      begin_step=0, end_step=end_step, frequency=max(1, frequency))

    # Wrap layers of a copy that already holds the trained weights, so training the wrapped model
    # never touches the caller's model.
    plain = keras().models.clone_model(model)
    plain.set_weights(model.get_weights())
    wrapped = keras().models.clone_model(plain, clone_function=lambda layer: (
        mot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sched, **kwargs)
        if layer.name in names else layer))
    log.info("prune: %s layers %s", "2:4" if structured else f"{sparsity:.0%} {schedule}", ", ".join(names))
    return wrapped, names


def _wrappers(model) -> list:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    return [layer for layer in model.layers if isinstance(layer, pruning_wrapper.PruneLowMagnitude)]


def apply_masks(model) -> None:
    """One-shot pruning: compute every wrapper's mask at its final step and zero the weights."""
    for layer in _wrappers(model):
        sched = layer.pruning_schedule
        if layer.sparsity_m_by_n:
            step = 1  # TF-MOT computes 2:4 masks once, at step 1
        else:
            step = int(getattr(sched, "end_step", -1))
            step = int(sched.begin_step) if step < 0 else step
        layer.pruning_step.assign(step)
        layer.pruning_obj.conditional_mask_update()
        layer.pruning_obj.weight_mask_op()


def callbacks() -> list:
    """Keras callbacks that advance the pruning step during fine-tuning."""
    return [tfmot().sparsity.keras.UpdatePruningStep()]


def is_pruned(model) -> bool:
    """Whether ``model`` still holds pruning wrappers."""
    return bool(_wrappers(model))


def strip(model):
    """Remove the pruning wrappers, keeping the pruned (zeroed) kernels."""
    if not is_pruned(model):
        return model
    return tfmot().sparsity.keras.strip_pruning(model)


def kernel_sparsity(model, names: list[str]) -> dict[str, float]:
    """Fraction of zero kernel weights of the named (stripped) layers, measured on the Keras model."""
    out = {}
    for name in names:
        kernel = model.get_layer(name).get_weights()[0]
        out[name] = float(np.mean(kernel == 0))
    return out
