"""Clustering centroids are converged k-means (Lloyd's iterations after TF-MOT's k-means++ seeding)."""

from __future__ import annotations

import numpy as np
import pytest
from compression_support import small_cnn

pytestmark = pytest.mark.toolchain


def _model():
    return small_cnn()


def _centroids(wrapped, name):
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    layer = wrapped.get_layer(f"cluster_{name}")
    assert isinstance(layer, cluster_wrapper.ClusterWeights)
    ((key, var),) = layer.cluster_centroids.items()
    return layer.original_clusterable_weights[key].numpy(), var.numpy()


def _sse(weights: np.ndarray, centroids: np.ndarray) -> float:
    return float(np.sum(np.min((weights.reshape(-1, 1) - centroids.reshape(1, -1)) ** 2, axis=1)))


@pytest.mark.parametrize("per_channel", [False, True])
def test_centroids_are_kmeans_fixed_points_closer_than_the_seeds(per_channel):
    from edgec.compress.cluster import cluster
    from edgec.compress.prune import tfmot

    model = _model()
    wrapped, names = cluster(model, clusters=4, per_channel=per_channel, layers=["middle", "hidden"])
    assert names == ["middle", "hidden"]
    ck = tfmot().clustering.keras
    seeded = ck.cluster_weights(_model().get_layer("middle"), number_of_clusters=4, cluster_per_channel=per_channel,
                                cluster_centroids_init=ck.CentroidInitialization.KMEANS_PLUS_PLUS)
    seeded.build((None, 6, 6, 8))
    weights, centroids = _centroids(wrapped, "middle")
    seeds = next(iter(seeded.cluster_centroids.values())).numpy()
    columns = weights.reshape(-1, weights.shape[-1]).T if per_channel else [weights.ravel()]
    rows = centroids if per_channel else [centroids]
    for col, row, seed in zip(columns, rows, seeds if per_channel else [seeds]):
        nearest = np.abs(col[:, None] - row[None, :]).argmin(1)
        for j in set(nearest.tolist()):  # every used centroid is the mean of its weights
            assert row[j] == pytest.approx(col[nearest == j].mean(), abs=1e-6)
        assert _sse(col, row) <= _sse(col, seed) + 1e-9


def test_sparsity_preserving_refinement_keeps_pruned_zeros():
    from edgec.compress.cluster import cluster, strip

    pruned = _model()
    kernel, bias = pruned.get_layer("middle").get_weights()
    kernel[np.abs(kernel) < np.median(np.abs(kernel))] = 0  # magnitude pruning to 50%, as pruning leaves it
    pruned.get_layer("middle").set_weights([kernel, bias])
    zeros = kernel == 0
    wrapped, _ = cluster(pruned, clusters=4, preserve_sparsity=True, layers=["middle"])
    kernel = strip(wrapped).get_layer("middle").get_weights()[0]
    assert np.all(kernel[zeros] == 0) and len(np.unique(kernel)) <= 4 + 1
