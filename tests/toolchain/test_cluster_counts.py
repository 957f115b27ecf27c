"""Per-layer cluster counts (recipe ``cluster_counts``): each layer gets its own number of shared values."""

from __future__ import annotations

import numpy as np
import pytest
from compression_support import small_cnn

from edgec.core.errors import InputError

pytestmark = pytest.mark.toolchain


def _model():
    return small_cnn(convs=("first", "middle", "big"))


def _unique_per_channel(model, name: str) -> int:
    kernel = model.get_layer(name).get_weights()[0]
    return max(len(np.unique(kernel[..., c])) for c in range(kernel.shape[-1]))


def test_counts_override_the_default_and_select_layers_left_out():
    from edgec.compress.cluster import cluster, cluster_counts, strip

    model = _model()
    counts = {"big": 4, "first": 3, "Dense": 8, "hidden": 6}  # a later selector wins ("hidden" over "Dense")
    assert cluster_counts(model, clusters=16, counts=counts) == {"middle": 16, "big": 4, "hidden": 6, "first": 3,
                                                                 "last": 8}
    wrapped, names = cluster(model, clusters=16, per_channel=True, counts=counts)
    assert names == ["first", "middle", "big", "hidden", "last"]  # model order; first/last named, so clustered
    stripped = strip(wrapped)
    got = {n: _unique_per_channel(stripped, n) for n in names}
    assert got["first"] <= 3 and got["big"] <= 4 and got["hidden"] <= 6 and got["last"] <= 8
    assert 8 < got["middle"] <= 16  # the default, per output channel


def test_bad_counts_are_refused_with_the_selector_named():
    from edgec.compress.cluster import cluster_counts

    with pytest.raises(InputError, match="matches no layer"):
        cluster_counts(_model(), clusters=16, counts={"conv_missing": 4})
    with pytest.raises(InputError, match="number of clusters for 'big' must be between 2 and 256"):
        cluster_counts(_model(), clusters=16, counts={"big": 1})
