"""Where the artifact departs from the float model, per output, for the report's pictures.

For a class output (a vector of at most :data:`MAX_CLASSES` values per sample) the confusion matrix
of the artifact's top-1 against the float model's top-1 on the held-out samples; for any other
output a histogram of the absolute error (artifact minus float), over every value of every sample.
"""

from __future__ import annotations

import numpy as np

MAX_CLASSES = 32
HISTOGRAM_BINS = 20


def _is_classes(y: np.ndarray) -> bool:
    per_sample = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
    return 2 <= per_sample <= MAX_CLASSES


def confusion(reference: np.ndarray, artifact: np.ndarray) -> list[list[int]]:
    """Counts ``[float class][artifact class]`` of top-1 answers (rows: float, columns: artifact)."""
    classes = int(np.prod(reference.shape[1:]))
    ref = reference.reshape(len(reference), -1).argmax(axis=1)
    art = np.nan_to_num(artifact.reshape(len(artifact), -1)).argmax(axis=1)
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (ref, art), 1)
    return matrix.tolist()


def error_histogram(reference: np.ndarray, artifact: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict:
    """Histogram of |artifact - float| over all values: bin edges and counts (NaN/inf counted apart)."""
    err = np.abs(artifact.astype(np.float64) - reference.astype(np.float64)).ravel()
    finite = err[np.isfinite(err)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    counts, edges = np.histogram(finite, bins=bins, range=(0.0, top))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
            "nonfinite": int(err.size - finite.size)}


def detail(reference: list[np.ndarray], artifact: list[np.ndarray], names: list[str] | None = None) -> list[dict]:
    """One entry per output: ``{"output", "kind": "classes", "confusion"}`` or ``{..., "error_histogram"}``."""
    out = []
    for i, (ref, art) in enumerate(zip(reference, artifact)):
        name = names[i] if names and i < len(names) else f"output {i}"
        if ref.shape != art.shape or not len(ref):
            continue
        if _is_classes(ref):
            out.append({"output": name, "kind": "classes", "confusion": confusion(ref, art)})
        else:
            out.append({"output": name, "kind": "values", "error_histogram": error_histogram(ref, art)})
    return out
