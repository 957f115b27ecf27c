"""Per-layer cluster counts for a size budget: mixed precision chosen by measured sensitivity.

``cluster_bits = 2.5`` in the recipe asks for 2.5 bits of TFLite Micro LUT storage per clustered
weight on average, value tables included. Rather than one number of clusters everywhere, each layer
gets what it can afford: every selected layer is clustered *alone* at each candidate count (2, 4, ...,
64 values per output channel, or per tensor), by k-means on its float weights as the clustering stage
does, and the float model's outputs on held-out samples are compared with the unclustered model's.
That normalized squared error is the layer's sensitivity at that count. A multiple-choice knapsack
then picks one count per layer (or none: the layer stays plain int8) minimizing the summed
sensitivity within the byte budget. Summing assumes the layers' errors add, the first-order
assumption of mixed-precision methods such as HAWQ; fine-tuning afterwards recovers the rest.

No training and quantile-seeded k-means: the same model and samples give the same counts.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgec.compress.cluster import lloyd
from edgec.compress.int4 import project_kernel

log = logging.getLogger(__name__)

CANDIDATE_BITS = (1, 2, 3, 4, 5, 6)  # 2..64 clusters; int8 itself is the "not clustered" choice
GRANULE = 8  # bytes: the knapsack's resolution
INT4 = "int4"  # the option of int4 weights (TFLite's INT4 type, no tables; edgec.compress.int4)


def cluster_kernel(kernel: np.ndarray, clusters: int, *, per_channel: bool,
                   preserve_sparsity: bool = False) -> np.ndarray:
    """``kernel`` with each output channel's (or the whole tensor's) weights replaced by their k-means
    centroid (quantile seeds, Lloyd's iterations). With ``preserve_sparsity`` zeros stay zero and count
    as one of the ``clusters`` values, as in TF-MOT's sparsity-preserving clustering."""
    columns = kernel.reshape(-1, kernel.shape[-1]).T if per_channel else kernel.reshape(1, -1)
    out = columns.copy()
    for i, col in enumerate(columns):
        keep = col != 0 if preserve_sparsity else np.ones(col.shape, bool)
        k = clusters - 1 if preserve_sparsity else clusters
        values = col[keep].astype(np.float64)
        if not len(values) or k < 1:
            continue
        centroids = lloyd(values, np.quantile(values, (np.arange(k) + 0.5) / k))
        out[i, keep] = centroids[np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)]
    return out.T.reshape(kernel.shape) if per_channel else out.reshape(kernel.shape)


def lut_bytes(weights: int, channels: int, bits) -> int:
    """Flash of a LUT-compressed int8 tensor: packed indices plus one 2**bits-entry table per channel
    (``bits`` :data:`INT4`: two weights per byte, no table)."""
    if bits == INT4:
        return math.ceil(weights / 2)
    return math.ceil(weights * bits / 8) + channels * 2 ** bits


def sensitivities(model, samples, names: list[str], *, per_channel: bool, preserve_sparsity: bool = False,
                  bits: tuple = CANDIDATE_BITS) -> dict[str, dict]:
    """Layer -> {index bits: normalized squared output error with only that layer clustered}.

    Per channel only for Conv2D, as TF-MOT's ``cluster_per_channel`` does. The choice :data:`INT4` in
    ``bits`` measures the layer on its int4 grid instead (:func:`edgec.compress.int4.project_kernel`)."""
    reference = np.asarray(model.predict(samples, batch_size=256, verbose=0), np.float64)
    scale = float(np.sum(reference ** 2)) or 1.0
    result: dict[str, dict[int, float]] = {}
    for name in names:
        layer = model.get_layer(name)
        original = layer.get_weights()
        result[name] = {}
        by_channel = per_channel and layer.__class__.__name__ == "Conv2D"
        for b in bits:
            if b == INT4:
                clustered = project_kernel(original[0], layer.__class__.__name__)
            else:
                clustered = cluster_kernel(original[0], 2 ** b, per_channel=by_channel,
                                           preserve_sparsity=preserve_sparsity)
            layer.set_weights([clustered] + original[1:])
            out = np.asarray(model.predict(samples, batch_size=256, verbose=0), np.float64)
            result[name][b] = float(np.sum((out - reference) ** 2)) / scale
        layer.set_weights(original)
    return result


def allocate(sens: dict[str, dict[int, float]], sizes: dict[str, tuple[int, int]],
             budget_bytes: int) -> dict[str, int | None]:
    """Index bits per layer (None: left int8) minimizing summed sensitivity with bytes <= budget.

    ``sizes`` maps a layer to (weights, channels of its value tables). Exact multiple-choice knapsack
    by dynamic programming over the budget in :data:`GRANULE`-byte steps. Raises ValueError when even
    the fewest bits everywhere do not fit.
    """
    names = list(sens)
    slots = budget_bytes // GRANULE
    # options[i]: (granules, error, bits) for layer i; int8 is exact (error 0) at one byte per weight.
    options = []
    for name in names:
        weights, channels = sizes[name]
        opts = [(-(-lut_bytes(weights, channels, b) // GRANULE), err, b) for b, err in sens[name].items()]
        opts.append((-(-weights // GRANULE), 0.0, None))
        options.append(opts)
    inf = float("inf")
    best = np.full(slots + 1, inf)
    best[0] = 0.0
    choice = []
    for opts in options:
        nxt = np.full(slots + 1, inf)
        pick = np.full(slots + 1, -1, dtype=np.int64)
        for j, (cost, err, _) in enumerate(opts):
            if cost > slots:
                continue
            cand = np.full(slots + 1, inf)
            cand[cost:] = best[:slots + 1 - cost] + err
            better = cand < nxt
            nxt[better], pick[better] = cand[better], j
        best = nxt
        choice.append(pick)
    if not np.isfinite(best).any():
        need = sum(min(o[0] for o in opts) for opts in options) * GRANULE
        raise ValueError(f"the clustered layers need at least {need} B at {min(CANDIDATE_BITS)} bit(s) per weight")
    end = int(np.argmin(best))  # the lowest error; ties go to the fewest bytes
    bits: dict[str, int | None] = {}
    for i in range(len(names) - 1, -1, -1):
        cost, _, b = options[i][int(choice[i][end])]
        bits[names[i]] = b
        end -= cost
    return {name: bits[name] for name in names}


def counts_for_budget(model, samples, names: list[str], *, average_bits: float, per_channel: bool,
                      preserve_sparsity: bool = False, int4: list[str] | None = None) -> dict:
    """Cluster counts for ``names`` at ``average_bits`` of LUT storage per weight (tables included).

    ``int4``: the layers that may take int4 weights instead (conv, depthwise, dense), a choice with
    its own measured sensitivity. Returns {"counts": {layer: clusters}, "int4": [layers],
    "int8": [layers left unclustered], "budget_bytes",
    "estimated_bytes", "sensitivity": {layer: {bits: error}}} for the report.
    """
    sizes = {}
    for name in names:  # TFLite Micro's LUT keeps a value table per output channel whatever the clustering
        kernel = model.get_layer(name).get_weights()[0]
        sizes[name] = (kernel.size, kernel.shape[-1])
    budget = int(average_bits * sum(w for w, _ in sizes.values()) / 8)
    sens = sensitivities(model, samples, names, per_channel=per_channel, preserve_sparsity=preserve_sparsity)
    for n, by_bits in sensitivities(model, samples, [n for n in names if n in (int4 or [])],
                                    per_channel=per_channel, bits=(INT4,)).items():
        sens[n].update(by_bits)
    bits = allocate(sens, sizes, budget)
    estimated = sum(sizes[n][0] if b is None else lut_bytes(*sizes[n], b) for n, b in bits.items())
    counts = {n: 2 ** b for n, b in bits.items() if b is not None and b != INT4}
    log.info("cluster: %.2f bits per weight -> %s (LUT bytes %d of %d)", average_bits,
             ", ".join(f"{n} {c}" for n, c in counts.items()), estimated, budget)
    return {"counts": counts, "int4": [n for n, b in bits.items() if b == INT4],
            "int8": [n for n, b in bits.items() if b is None], "budget_bytes": budget,
            "estimated_bytes": estimated,
            "sensitivity": {n: {str(b): round(e, 6) for b, e in s.items()} for n, s in sens.items()}}
