"""The optimize stage: fuse -> low-rank -> prune -> cluster -> fine-tune/distill, in that order.

Fusion runs first so that masks and clusters are applied to the weights that ship. Pruning and
clustering cannot wrap the same layer at once, so when both are asked for and fine-tuning is on,
the pruned model is fine-tuned (TF-MOT's schedule moves the masks) and stripped before clustering,
and clustering then preserves its zeros; without fine-tuning, pruning is one-shot. The final
recovery step trains whatever wrappers the last compression left (clustering centroids, pruning
masks) or, with ``qat``, a quantization-aware copy using TF-MOT's collaborative schemes.
Every stage appends ``{"name": ..., "seconds": ..., details}`` to the returned list.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from edgec.compress import cluster, finetune, prune
from edgec.compress.cluster_alloc import counts_for_budget
from edgec.compress.fuse import fuse
from edgec.compress.int4 import KERAS_LAYERS, project_layers, projection_callback
from edgec.compress.lowrank import factorize
from edgec.compress.prune import select_layers
from edgec.compress.recipe import Recipe
from edgec.core.errors import InputError
from edgec.core.tf import keras, seed_everything

log = logging.getLogger(__name__)

# cluster_bits: calibration samples each layer's clustering error is measured on (one forward pass
# per layer and bit width, so the cap bounds the allocation's time).
SENSITIVITY_SAMPLES = 256


def _samples(train_x) -> int:
    if train_x is None:
        return 0
    if isinstance(train_x, dict):
        return len(next(iter(train_x.values()))) if train_x else 0
    return len(train_x)


class _Stages:
    """Collects stage reports with their wall-clock time."""

    def __init__(self):
        self.reports: list[dict] = []
        self._start = time.monotonic()

    def done(self, name: str, **details) -> None:
        now = time.monotonic()
        self.reports.append({"name": name, "seconds": round(now - self._start, 3), **details})
        self._start = now


def _auto_qat(recipe: Recipe) -> str:
    if recipe.qat != "auto":
        return recipe.qat
    if recipe.pruning and recipe.clustering:
        return "pcqat"
    return "cluster_preserve" if recipe.clustering else "prune_preserve" if recipe.pruning else "plain"


def _finetune(model, recipe: Recipe, teacher, train_x, train_y, callbacks, stages: _Stages, after: str):

    if recipe.distill and recipe.label_weight and train_y is None:
        log.warning("finetune: label_weight %g but the samples have no labels: distillation alone",
                    recipe.label_weight)
    # Labels alone without distill; with distill, labels only as the label_weight share of the loss.
    labels = None if recipe.distill and not recipe.label_weight else train_y
    model, report = finetune.finetune(model, x=train_x, y=labels, teacher=teacher, epochs=recipe.finetune_epochs,
                                      batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
                                      temperature=recipe.temperature, seed=recipe.seed, callbacks=callbacks,
                                      label_weight=recipe.label_weight if recipe.distill else 1.0,
                                      lr_schedule=recipe.lr_schedule, augment=recipe.augment)
    report.pop("seconds", None)
    stages.done("finetune", after=after, **report)
    return model


def _int4_layers(model, recipe: Recipe) -> list[str]:
    """The layers the recipe names for int4 weights ([] for none or ``auto``, which the cluster stage decides)."""
    if not recipe.int4 or recipe.int4 == ["auto"]:
        return []
    return select_layers(model, recipe.int4, kinds=KERAS_LAYERS, keep_first_last=False, stage="int4")


def _cluster(model, recipe: Recipe, train_x, int4: list[str]) -> tuple[object, list[str], dict]:
    """The cluster stage: the recipe's counts, or with ``cluster_bits`` counts chosen per layer by
    measured sensitivity (:mod:`edgec.compress.cluster_alloc`); returns the model, clustered layers, report.
    Layers in ``int4`` are not clustered; with ``int4 = ["auto"]`` the knapsack may choose int4 for a
    layer (the report's ``allocation.int4``)."""
    if not recipe.cluster_bits:
        layers = recipe.cluster_layers
        if int4:
            layers = [n for n in select_layers(model, layers, kinds=cluster.CLUSTERABLE,
                                               keep_first_last=recipe.keep_first_last, stage="cluster")
                      if n not in int4]
        model, names = cluster.cluster(model, clusters=recipe.clusters, per_channel=recipe.cluster_per_channel,
                                       preserve_sparsity=recipe.pruning, layers=layers,
                                       keep_first_last=recipe.keep_first_last and not int4,
                                       counts=recipe.cluster_counts)
        return model, names, ({"counts": recipe.cluster_counts} if recipe.cluster_counts else {})

    if _samples(train_x) == 0:
        raise InputError("cluster_bits measures each layer's sensitivity on calibration samples: pass "
                         "--calibration, or set clusters instead", stage="cluster")
    samples = {k: v[:SENSITIVITY_SAMPLES] for k, v in train_x.items()} if isinstance(train_x, dict) \
        else train_x[:SENSITIVITY_SAMPLES]
    candidates = select_layers(model, recipe.cluster_layers, kinds=cluster.CLUSTERABLE,
                               keep_first_last=recipe.keep_first_last, stage="cluster")
    fixed = cluster.cluster_counts(model, clusters=2, layers=[], counts=recipe.cluster_counts) \
        if recipe.cluster_counts else {}
    free = [n for n in candidates if n not in fixed and n not in int4]
    auto = [n for n in free if model.get_layer(n).__class__.__name__ in KERAS_LAYERS] if recipe.int4 == ["auto"] else []
    try:
        alloc = counts_for_budget(model, samples, free, average_bits=recipe.cluster_bits,
                                  per_channel=recipe.cluster_per_channel, preserve_sparsity=recipe.pruning,
                                  int4=auto) if free else {"counts": {}}
    except ValueError as e:
        raise InputError(f"cluster_bits = {recipe.cluster_bits:g}: {e}; raise cluster_bits", stage="cluster") from None
    counts = {**alloc["counts"], **fixed}
    if not counts:
        log.warning("cluster: the bit budget leaves every layer int8")
        return model, [], {"allocation": alloc}
    model, names = cluster.cluster(model, clusters=max(counts.values()), per_channel=recipe.cluster_per_channel,
                                   preserve_sparsity=recipe.pruning, layers=list(counts), keep_first_last=False,
                                   counts=counts)
    return model, names, {"counts": counts, "allocation": alloc}


def _prune(model, recipe: Recipe, steps: int, one_shot: bool):

    per_epoch = max(1, steps // max(recipe.finetune_epochs, 1))
    wrapped, names = prune.prune(model, sparsity=recipe.prune or 0.5, structure=recipe.prune_structure,
                                 schedule=recipe.prune_schedule, layers=recipe.prune_layers,
                                 keep_first_last=recipe.keep_first_last, end_step=steps, frequency=per_epoch)
    if names and one_shot:
        prune.apply_masks(wrapped)  # no training will run the pruning schedule
    return wrapped, names


def _prune_stage(model, recipe: Recipe, steps: int, stages: _Stages, teacher, train_x, train_y):
    """Prune; returns the model, the callbacks a final fine-tuning still needs, and whether it pruned."""
    if not recipe.pruning:
        return model, [], False
    # Only ordinary fine-tuning runs the pruning schedule; QAT starts from already-pruned weights.
    one_shot = not steps or recipe.qat != "none"
    model, names = _prune(model, recipe, steps, one_shot)
    structure = recipe.prune_structure if recipe.prune_structure == "2:4" else f"{recipe.prune:g}"
    stages.done("prune", layers=names, structure=structure, schedule=recipe.prune_schedule, one_shot=one_shot)
    if names and recipe.clustering and not one_shot:
        # Clustering cannot wrap a pruning wrapper: recover the pruned model first, then strip it.
        model = _finetune(model, recipe, teacher, train_x, train_y, prune.callbacks(), stages, after="prune")
    if recipe.clustering or one_shot:
        return prune.strip(model), [], bool(names)
    return model, prune.callbacks(), bool(names)


def optimize(model, recipe: Recipe, *, train_x=None, train_y: np.ndarray | None = None) -> tuple[object, list[dict]]:
    """Run the recipe's compression stages on a float ``tf_keras`` model.

    ``train_x`` (array, or dict by input name) and optional integer ``train_y`` feed recovery
    fine-tuning; without labels (or with ``recipe.distill``) the float model is the teacher.
    Returns the compressed float model, wrappers stripped (a QAT model when ``recipe.qat`` is set),
    and the stage reports.
    """
    recipe.validate()
    seed_everything(recipe.seed)
    n = _samples(train_x)
    if recipe.finetune_epochs and n == 0:
        raise InputError("fine-tuning needs training samples: pass calibration data or set finetune_epochs = 0",
                         stage="optimize")
    steps = recipe.finetune_epochs * -(-n // recipe.batch_size) if n else 0
    if steps:  # before any compression runs, not after it at the fine-tuning
        finetune.require_augmentable(train_x, recipe.augment, "optimize")
    stages = _Stages()
    if recipe.fuse:

        model, fusions = fuse(model)
        stages.done("fuse", fusions=fusions)
    teacher = keras().models.clone_model(model)
    teacher.set_weights(model.get_weights())
    compressed = False
    int4 = _int4_layers(model, recipe)
    if recipe.low_rank:

        model, layers = factorize(model, energy=recipe.low_rank, layers=recipe.low_rank_layers)
        stages.done("low-rank", energy=recipe.low_rank, layers=layers)
        compressed = compressed or bool(layers)
    model, pending, pruned = _prune_stage(model, recipe, steps, stages, teacher, train_x, train_y)
    compressed = compressed or pruned
    if recipe.clustering:
        model, names, detail = _cluster(model, recipe, train_x, int4)
        int4 = int4 + [n for n in detail.get("allocation", {}).get("int4", []) if n not in int4]
        if recipe.qat != "none" or not steps:
            model = cluster.strip(model)
        stages.done("cluster", layers=names, clusters=recipe.clusters, per_channel=recipe.cluster_per_channel,
                    sparsity_preserved=recipe.pruning, **detail)
        compressed = compressed or bool(names)
    if int4:
        project_layers(model, int4)
        pending = pending + [projection_callback(int4)]
        stages.done("int4", layers=int4)
        compressed = True
    if steps and recipe.qat != "none":
        mode = _auto_qat(recipe)
        model = finetune.quantize_aware(model, mode=mode)
        stages.done("qat", mode=mode)
        model = _finetune(model, recipe, teacher, train_x, train_y, [], stages, after="qat")
    elif steps and compressed:
        model = _finetune(model, recipe, teacher, train_x, train_y, pending, stages, after="compression")
    log.info("optimize: %s", " -> ".join(s["name"] for s in stages.reports) or "nothing to do")
    return cluster.strip(prune.strip(model)), stages.reports
