"""Verification metrics that fit each output: classifiers by top-1, everything else by SNR and cosine.

A classifier output (probabilities over a class axis) is judged by whether the artifact picks the same
class as the float model (top-1 agreement, and top-1 accuracy when labels exist). That says nothing
about a regression, a reconstruction (MLPerf Tiny's anomaly-detection autoencoder: 640 values in, 640
out) or an embedding, where "the largest of 640 reconstructed values" is noise. Those are judged by the
signal-to-noise ratio of the artifact against the float reference (dB), the cosine similarity per
sample and the max absolute error. Every output of a multi-output model gets its own entry.

The kind is inferred from the float reference's values, so it holds for Keras and ONNX models alike:
non-negative rows over a last axis of two or more that sum to 1 are probabilities (a softmax), hence
a classifier; a model whose evaluation data has class labels is a classifier in its first output
(logits), and everything else is ``regression``. The recipe overrides it (``output_kind`` for every
output, ``output_kinds`` by output name).
"""

from __future__ import annotations

import math

import numpy as np

from edgec.core.errors import InputError

KINDS = ("classifier", "regression")


def infer_kind(reference: np.ndarray, *, has_labels: bool = False) -> tuple[str, str]:
    """(kind, why) for one output from its float reference values (batch first)."""
    rows = reference.reshape(len(reference), -1) if reference.ndim > 1 else reference.reshape(-1, 1)
    wide = [d for d in reference.shape[1:] if d != 1]
    # The class axis is the last one, or the only one wider than 1 (N x 1000 x 1 x 1 from a 1x1 conv head).
    last = wide[0] if len(wide) == 1 else reference.shape[-1] if reference.ndim > 1 else 1
    if last >= 2 and len(reference) and np.all(np.isfinite(reference)):
        flat = (rows if len(wide) == 1 else reference.reshape(-1, last)).astype(np.float64)
        if flat.min() >= -1e-6 and flat.max() <= 1 + 1e-6 and np.allclose(flat.sum(axis=1), 1.0, atol=1e-3):
            return "classifier", f"probabilities over {last} classes (rows sum to 1)"
    if has_labels and rows.shape[1] >= 2:
        return "classifier", "the evaluation data has class labels for this output"
    return "regression", "not probabilities over a class axis"


# An output whose spread is under this fraction of its magnitude (a near-constant output: e.g. the onnx
# wheel's light-zoo DenseNet-121, whose weights are constants, gives the same 1000 logits, spread 1e-7 of
# their size) is judged against that fraction of its magnitude: against its float32 spread alone, mere
# reordering of sums reads as an error of 150% of the range.
RANGE_FLOOR = 1e-2


def range_relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    """``max|other - reference|`` over the reference's range (its spread), the measure of "the same
    computation" used to check a rewritten model (a lowering, a fold, a rebuild) against its original.

    The range is floored at :data:`RANGE_FLOOR` of the largest magnitude, and at 1 for an all-zero
    output; ``inf`` when the shapes differ.
    """
    r, o = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if r.size != o.size:
        return float("inf")
    if not r.size:
        return 0.0
    scale = max(float(np.ptp(r)), RANGE_FLOOR * float(np.abs(r).max())) or 1.0
    return float(np.max(np.abs(o.reshape(r.shape) - r))) / scale


def top1(y: np.ndarray) -> np.ndarray:
    """The index of the largest value of each sample (batch first)."""
    return y.reshape(len(y), -1).argmax(axis=1)


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose highest output is the label."""
    return float(np.mean(top1(outputs) == labels))


def snr_db(reference: np.ndarray, artifact: np.ndarray) -> float | None:
    """10 log10(signal power / error power) over all values; None when there is no error at all."""
    r, a = reference.astype(np.float64), artifact.astype(np.float64)
    noise = float(np.sum((r - a) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return None
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


# Below this fraction of the output's power, what varies from sample to sample is float rounding.
CONSTANT_SPREAD = 1e-10


def input_spread(reference: np.ndarray) -> tuple[float, float]:
    """(power of the reference's variation across samples, its total power), summed over all values."""
    r = reference.astype(np.float64)
    return float(np.sum((r - r.mean(axis=0)) ** 2)), float(np.sum(r ** 2))


def input_dependent_snr_db(reference: np.ndarray, artifact: np.ndarray) -> float | None:
    """SNR of the part of the output that depends on the input: its variation across samples vs the error.

    The plain SNR counts the output's constant part as signal, so a model whose outputs barely change
    with the input (a random-weight network) passes it with an error as large as all it computes from
    the input. None for fewer than two samples or no error.
    """
    if len(reference) < 2:
        return None
    spread, _ = input_spread(reference)
    noise = float(np.sum((reference.astype(np.float64) - artifact.astype(np.float64)) ** 2))
    if noise == 0.0:
        return None
    return -math.inf if spread == 0.0 else 10.0 * math.log10(spread / noise)


def output_metrics(reference: np.ndarray, artifact: np.ndarray, kind: str, labels: np.ndarray | None) -> dict:
    """The metrics of one output: SNR, cosine (mean and worst sample), max abs error; top-1 for classifiers."""
    n = len(reference)
    nonfinite = int(np.size(artifact) - np.count_nonzero(np.isfinite(artifact)))
    if nonfinite:  # NaN would compare false everywhere and hide behind a "good" cosine
        artifact = np.nan_to_num(artifact, nan=0.0, posinf=0.0, neginf=0.0)
    r2 = reference.reshape(n, -1).astype(np.float64)
    a2 = artifact.reshape(n, -1).astype(np.float64)
    r_norm, a_norm = np.linalg.norm(r2, axis=1), np.linalg.norm(a2, axis=1)
    norms = r_norm * a_norm
    # Two zero rows agree; one zero row does not (an int8 softmax of 1000 near-equal classes rounds to 0).
    cos = np.where(norms > 0, (r2 * a2).sum(axis=1) / np.maximum(norms, 1e-30),
                   np.where((r_norm == 0) & (a_norm == 0), 1.0, 0.0))
    snr = snr_db(reference, artifact)
    out = {
        "kind": kind,
        "shape": list(reference.shape[1:]),
        "nonfinite_outputs": nonfinite,
        "snr_db": None if snr is None or math.isinf(snr) else round(snr, 3),
        "cosine": float(np.mean(cos)) if n else 1.0,
        "cosine_min": float(np.min(cos)) if n else 1.0,
        "max_abs_err": float(np.max(np.abs(r2 - a2))) if r2.size else 0.0,
    }
    dependent = input_dependent_snr_db(reference, artifact)
    out["input_dependent_snr_db"] = None if dependent is None or math.isinf(dependent) else round(dependent, 3)
    spread, power = input_spread(reference)
    # Every held-out sample gives the same output: agreement is measured on one point, many times.
    out["reference_constant"] = bool(n >= 2 and spread <= CONSTANT_SPREAD * power)
    if snr is None:
        out["snr_note"] = "no error: identical to the float reference"
    elif math.isinf(snr):
        out["snr_note"] = "the float reference is all zeros but the artifact is not"
    if kind == "classifier":
        out["top1_agreement"] = float(np.mean(top1(reference) == top1(artifact))) if n else 1.0
        out["reference_top1"] = out["artifact_top1"] = None
        if labels is not None:
            out["reference_top1"] = float(np.mean(top1(reference) == labels))
            out["artifact_top1"] = float(np.mean(top1(artifact) == labels))
    return out


def output_failures(m: dict, thresholds: dict, name: str) -> list[str]:
    """The thresholds one output's metrics breach; non-classifiers by SNR, cosine and max abs error."""
    failures = []
    where = f"output '{name}' " if name else ""
    if m.get("nonfinite_outputs"):
        failures.append(f"{where}{m['nonfinite_outputs']} output values are NaN or inf")
    agree = thresholds.get("min_top1_agreement")
    if m["kind"] == "classifier" and agree is not None and m["top1_agreement"] < agree:
        failures.append(f"{where}top1_agreement {m['top1_agreement']:.4f} < {agree}")
    cos = thresholds.get("min_cosine")
    if cos is not None and m["cosine"] < cos:
        failures.append(f"{where}cosine {m['cosine']:.4f} < {cos}")
    if m["kind"] == "classifier":
        return failures
    snr = thresholds.get("min_snr_db")
    if snr is not None and m.get("snr_note", "").startswith("the float reference is all zeros"):
        failures.append(f"{where}SNR: {m['snr_note']}")
    elif snr is not None and m["snr_db"] is not None and m["snr_db"] < snr:
        failures.append(f"{where}SNR {m['snr_db']:.2f} dB < {snr} dB")
    err = thresholds.get("max_abs_err")
    if err is not None and m["max_abs_err"] > err:
        failures.append(f"{where}max abs error {m['max_abs_err']:.4g} > {err}")
    return failures


def output_warnings(m: dict, name: str) -> list[str]:
    """What one output's metrics cannot show, though no threshold is breached."""
    if not m.get("reference_constant"):
        return []
    where = f"output '{name}': " if name else ""
    return [f"{where}the float model gives the same output for every held-out sample, so agreement with it "
            "proves little (check the model's weights and that the samples differ)"]


def resolve_kinds(reference: list[np.ndarray], names: list[str], settings: dict, *, has_labels: bool
                  ) -> list[tuple[str, str]]:
    """(kind, why) per output: the recipe's ``output_kinds`` by name, else its ``output_kind``, else inferred.

    Labels are class indices of the first output only, so only it can be a classifier by labels.
    """
    every, by_name = settings.get("output_kind"), dict(settings.get("output_kinds") or {})
    for value in [every, *by_name.values()]:
        if value is not None and value not in KINDS:
            raise InputError(f"output kind {value!r} is not known; use {' or '.join(KINDS)}", stage="verify")
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise InputError(f"output_kinds names {', '.join(unknown)}, but the model's outputs are "
                         f"{', '.join(names)}", stage="verify")
    kinds = []
    for i, (ref, name) in enumerate(zip(reference, names)):
        if name in by_name:
            kinds.append((by_name[name], "set in the recipe (output_kinds)"))
        elif every is not None:
            kinds.append((every, "set in the recipe (output_kind)"))
        else:
            kinds.append(infer_kind(ref, has_labels=has_labels and i == 0))
    return kinds
