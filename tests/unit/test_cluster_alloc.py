"""Mixed-precision cluster counts (edgec/compress/cluster_alloc.py): the knapsack and the k-means it measures with."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgec.compress.cluster_alloc import GRANULE, allocate, cluster_kernel, lut_bytes


def _cost(sizes, bits):
    return sum(sizes[n][0] if b is None else lut_bytes(*sizes[n], b) for n, b in bits.items())


def _brute_force(sens, sizes, budget):
    """The best assignment by enumeration (costs rounded up to granules, as the knapsack sees them)."""
    names = list(sens)
    best = None
    for combo in itertools.product(*[list(sens[n]) + [None] for n in names]):
        granules = sum(-(-(sizes[n][0] if b is None else lut_bytes(*sizes[n], b)) // GRANULE)
                       for n, b in zip(names, combo))
        if granules > budget // GRANULE:
            continue
        err = sum(0.0 if b is None else sens[n][b] for n, b in zip(names, combo))
        if best is None or err < best[0] - 1e-12:
            best = (err, dict(zip(names, combo)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_allocation_is_the_best_within_the_budget(seed):
    rng = np.random.default_rng(seed)
    sizes = {f"l{i}": (int(rng.integers(200, 5000)), int(rng.integers(4, 64))) for i in range(4)}
    # Error falls with more bits, as measured sensitivities do; layers differ in how much.
    sens = {n: {b: float(rng.uniform(0.1, 2.0) * 4.0 ** -b) for b in (1, 2, 3, 4)} for n in sizes}
    total = sum(w for w, _ in sizes.values())
    budget = int(total * rng.uniform(0.2, 0.6))
    bits = allocate(sens, sizes, budget)
    assert _cost(sizes, bits) <= budget
    best_err, _ = _brute_force(sens, sizes, budget)
    assert sum(0.0 if b is None else sens[n][b] for n, b in bits.items()) == pytest.approx(best_err)


def test_sensitive_layers_get_more_bits_and_a_roomy_budget_leaves_int8():
    sizes = {"robust": (4096, 16), "sensitive": (4096, 16)}
    sens = {"robust": {1: 0.01, 2: 0.005, 3: 0.001}, "sensitive": {1: 5.0, 2: 1.0, 3: 0.2}}
    bits = allocate(sens, sizes, lut_bytes(4096, 16, 1) + lut_bytes(4096, 16, 3))
    assert bits == {"robust": 1, "sensitive": 3}
    assert allocate(sens, sizes, 2 * 4096) == {"robust": None, "sensitive": None}  # int8 is exact and fits
    with pytest.raises(ValueError, match="need at least"):
        allocate(sens, sizes, 100)


@pytest.mark.parametrize("per_channel", [True, False])
def test_cluster_kernel_keeps_at_most_k_values_per_channel_at_their_means(per_channel):
    kernel = np.random.default_rng(0).normal(size=(3, 3, 8, 6)).astype(np.float32)
    out = cluster_kernel(kernel, 4, per_channel=per_channel)
    assert out.shape == kernel.shape and out.dtype == kernel.dtype
    groups = [(kernel[..., c], out[..., c]) for c in range(6)] if per_channel else [(kernel, out)]
    for w, q in groups:
        values = np.unique(q)
        assert len(values) <= 4
        for v in values:  # a converged k-means centroid is the mean of its members
            assert v == pytest.approx(float(w[q == v].mean()), abs=1e-5)
    assert np.array_equal(cluster_kernel(kernel, 4, per_channel=per_channel), out)  # deterministic


def test_cluster_kernel_keeps_pruned_zeros_as_one_of_the_values():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 4, 5)).astype(np.float32)
    kernel[np.abs(kernel) < 0.6] = 0.0  # about half pruned
    out = cluster_kernel(kernel, 4, per_channel=True, preserve_sparsity=True)
    assert np.array_equal(out == 0, kernel == 0)
    assert all(len(np.unique(out[..., c])) <= 4 for c in range(5))  # zero + 3 centroids


@pytest.mark.parametrize("seed", range(4))
def test_int4_is_one_more_choice_of_the_knapsack(seed):
    """``int4`` (half a byte per weight, no tables) competes with the LUT widths on measured error."""
    from edgec.compress.cluster_alloc import INT4

    rng = np.random.default_rng(seed)
    sizes = {f"l{i}": (int(rng.integers(200, 5000)), int(rng.integers(16, 128))) for i in range(4)}
    sens = {n: {**{b: float(rng.uniform(0.1, 2.0) * 4.0 ** -b) for b in (2, 3, 4)},
                INT4: float(rng.uniform(0.001, 0.05))} for n in sizes}
    budget = int(sum(w for w, _ in sizes.values()) * rng.uniform(0.35, 0.6))
    bits = allocate(sens, sizes, budget)
    assert _cost(sizes, bits) <= budget
    err = sum(0.0 if b is None else sens[n][b] for n, b in bits.items())
    assert err == pytest.approx(_brute_force(sens, sizes, budget)[0])
    assert lut_bytes(1001, 8, INT4) == 501


def test_int4_wins_where_tables_cost_more_than_its_extra_bit():
    from edgec.compress.cluster_alloc import INT4

    # A 1x1 conv: 512 weights, 64 channels. LUT 3 bits = 192 B + 512 B of tables; int4 = 256 B.
    sizes = {"pointwise": (512, 64)}
    sens = {"pointwise": {3: 0.001, 4: 0.0005, INT4: 0.001}}
    assert allocate(sens, sizes, 300) == {"pointwise": INT4}
