"""tools/bench_coverage.py builds its keras.applications rows with seeded random weights and batch-norm
statistics from real photos: the saved model's output must follow its input, and the build is seeded."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tools import bench_coverage

pytestmark = pytest.mark.toolchain


def test_random_weight_mobilenet_is_normalized_by_photos_and_depends_on_its_input(tmp_path):
    case = next(c for c in bench_coverage.cases(tmp_path) if c.make == ("tf_keras", "MobileNet-0.25"))
    assert bench_coverage.build_app(case, tmp_path) is None and case.path.is_file()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras

    model = keras.models.load_model(case.path, compile=False)
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    betas = np.concatenate([layer.beta.numpy() for layer in bns])
    variances = np.concatenate([layer.moving_variance.numpy() for layer in bns])
    assert 1.0 <= betas.min() and betas.max() <= 2.0  # the non-chaotic operating point
    assert not np.allclose(variances, 1.0)  # statistics from the photos, not the initial ones
    x = bench_coverage.normalize(bench_coverage.photos(16, bench_coverage.APP_SIZE, seed=1), case.scale)
    y = model.predict(x, verbose=0)
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-4)
    # The input-dependent part of the output is not negligible (a chaotic or collapsed network's is).
    assert y.std(axis=0).mean() > 0.05 * np.abs(y).mean(), y.std(axis=0)
    # Seeded: a second build writes the same weights.
    again = bench_coverage.Case(**{**case.__dict__, "path": tmp_path / "again.h5"})
    assert bench_coverage.build_app(again, tmp_path) is None
    for a, b in zip(model.get_weights(), keras.models.load_model(again.path, compile=False).get_weights()):
        np.testing.assert_array_equal(a, b)
