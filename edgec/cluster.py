"""Weight clustering with TF-MOT: N shared values per kernel (or per output channel), k-means++ init.

Clustering follows pruning in the optimize stage; with ``preserve_sparsity`` the zeros that pruning
made stay zero. :func:`strip` leaves plain layers whose kernels hold only the cluster centroids. The
int8 converter quantizes per output channel with a symmetric scale, so N float values per channel
become at most N int8 values per channel, which is what LUT compression (:mod:`edgec.lut`) stores.
"""

from __future__ import annotations

import logging

import numpy as np

from .errors import InputError
from .prune import select_layers, tfmot

log = logging.getLogger(__name__)

# TF-MOT's clustering registry clusters the kernels of these; it lists DepthwiseConv2D with no
# clusterable weights, so depthwise kernels are left as they are.
CLUSTERABLE = ("Conv1D", "Conv2D", "Dense")


def cluster(model, *, clusters: int = 16, per_channel: bool = False, preserve_sparsity: bool = False,
            layers: list[str] | None = None, keep_first_last: bool = True) -> tuple[object, list[str]]:
    """Wrap the selected layers of ``model`` with ``cluster_weights``.

    ``clusters`` shared values (k-means++ initialization) per kernel, or per output channel of Conv2D
    layers with ``per_channel``. ``preserve_sparsity`` keeps pruned zeros at zero. Returns the wrapped
    model (train it, or :func:`strip` it directly) and the names of the clustered layers.
    """
    mot = tfmot()
    from .tf import keras

    if not 2 <= int(clusters) <= 256:
        raise InputError(f"number of clusters must be between 2 and 256 (int8 has 256 values), got {clusters}",
                         stage="cluster")
    names = select_layers(model, layers, kinds=CLUSTERABLE, keep_first_last=keep_first_last, stage="cluster")
    if not names:
        log.warning("cluster: no layer selected (the model has too few clusterable layers)")
        return model, []
    ck = mot.clustering.keras
    params = {
        "number_of_clusters": int(clusters),
        "cluster_centroids_init": ck.CentroidInitialization.KMEANS_PLUS_PLUS,
        "preserve_sparsity": bool(preserve_sparsity),
        "cluster_per_channel": bool(per_channel),
    }

    # The wrappers compute their centroids from the weights they see when built, so the clone must
    # carry the trained weights first: clone with plain copies, copy weights, then wrap.
    plain = keras().models.clone_model(model)
    plain.set_weights(model.get_weights())
    wrapped = keras().models.clone_model(plain, clone_function=lambda layer: (
        ck.cluster_weights(layer, **params) if layer.name in names else layer))
    log.info("cluster: %d clusters%s%s on %s", clusters, " per channel" if per_channel else "",
             ", sparsity preserved" if preserve_sparsity else "", ", ".join(names))
    return wrapped, names


def is_clustered(model) -> bool:
    """Whether ``model`` still holds clustering wrappers."""
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    return any(isinstance(layer, cluster_wrapper.ClusterWeights) for layer in model.layers)


def strip(model):
    """Remove the clustering wrappers; kernels keep only the centroid values."""
    if not is_clustered(model):
        return model
    return tfmot().clustering.keras.strip_clustering(model)


def unique_values(model, names: list[str]) -> dict[str, int]:
    """Largest number of distinct kernel values per output channel, on the (stripped) Keras model."""
    out = {}
    for name in names:
        kernel = model.get_layer(name).get_weights()[0]
        flat = kernel.reshape(-1, kernel.shape[-1])
        out[name] = int(max(len(np.unique(flat[:, c])) for c in range(flat.shape[1])))
    return out
