"""Verification: run the artifact in its real runtime on held-out samples, compare with float.

Metrics (after dequantization): top-1 accuracy of the float reference and of the artifact when labels
exist, top-1 agreement between them, max absolute error and cosine similarity. Thresholds come from
the target profile; a breach is a :class:`GateError` naming the metric (exit 1).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .calibration import Dataset
from .errors import GateError, InputError
from .runtimes import RUNTIMES

log = logging.getLogger(__name__)

STAGE = "verify"


def reference_outputs(keras_model, samples: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Float outputs for stacked samples, as a list (one array per model output).

    ``keras_model`` is a ``tf_keras.Model``, or an ``onnx.ModelProto`` that ONNX Runtime runs (an
    ONNX model kept as ONNX, see :attr:`edgec.load.LoadedModel.reference`).
    """
    if hasattr(keras_model, "graph"):
        return _onnx_outputs(keras_model, samples)
    names = list(keras_model.input_names)
    feed = [samples[n] for n in names] if all(n in samples for n in names) else list(samples.values())
    out = keras_model(feed if len(feed) > 1 else feed[0], training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, np.float32) for o in out]


def _onnx_outputs(model, samples: dict[str, np.ndarray]) -> list[np.ndarray]:
    from .export_onnx import feeds
    from .onnx_lower import run_onnx

    initializers = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in initializers]
    return [np.asarray(o, np.float32) for o in run_onnx(model, feeds(samples, names))]


def _top1(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1).argmax(axis=1)


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose highest output is the label."""
    return float(np.mean(_top1(outputs) == labels))


def compare(reference: list[np.ndarray], artifact: list[np.ndarray], labels: np.ndarray | None) -> dict:
    """The verification metrics for artifact outputs against the float reference."""
    ref, art = reference[0], artifact[0]
    if ref.shape != art.shape:
        raise GateError(f"artifact output shape {art.shape} differs from the float model's {ref.shape}",
                        stage=STAGE)
    diffs = [float(np.nanmax(np.abs(r - a))) if r.size else 0.0 for r, a in zip(reference, artifact)]
    r2, a2 = ref.reshape(len(ref), -1).astype(np.float64), art.reshape(len(art), -1).astype(np.float64)
    norms = np.linalg.norm(r2, axis=1) * np.linalg.norm(a2, axis=1)
    cos = np.where(norms > 0, (r2 * a2).sum(axis=1) / np.maximum(norms, 1e-30), 1.0)
    nonfinite = int(sum(np.size(a) - np.count_nonzero(np.isfinite(a)) for a in artifact))
    if nonfinite:  # NaN would compare false everywhere and hide behind a "good" cosine
        art = np.nan_to_num(art, nan=0.0, posinf=0.0, neginf=0.0)
    metrics = {
        "samples": int(len(ref)),
        "nonfinite_outputs": nonfinite,
        "top1_agreement": float(np.mean(_top1(ref) == _top1(art))),
        "max_abs_err": max(diffs),
        "cosine": float(np.mean(cos)),
        "cosine_min": float(np.min(cos)),
        "reference_top1": None,
        "artifact_top1": None,
    }
    if labels is not None:
        metrics["reference_top1"] = top1_accuracy(ref, labels)
        metrics["artifact_top1"] = top1_accuracy(art, labels)
    return metrics


def gate(metrics: dict, thresholds: dict) -> list[str]:
    """Names and values of every threshold the metrics breach (empty list: passed)."""
    failures = []
    if metrics.get("nonfinite_outputs"):
        failures.append(f"{metrics['nonfinite_outputs']} output values are NaN or inf")
    agree = thresholds.get("min_top1_agreement")
    if agree is not None and metrics["top1_agreement"] < agree:
        failures.append(f"top1_agreement {metrics['top1_agreement']:.4f} < {agree}")
    cos = thresholds.get("min_cosine")
    if cos is not None and metrics["cosine"] < cos:
        failures.append(f"cosine {metrics['cosine']:.4f} < {cos}")
    drop = thresholds.get("max_top1_drop")
    if drop is not None and metrics.get("artifact_top1") is not None:
        lost = metrics["reference_top1"] - metrics["artifact_top1"]
        if lost > drop:
            failures.append(f"top-1 drop {lost:.4f} ({metrics['reference_top1']:.4f} -> "
                            f"{metrics['artifact_top1']:.4f}) > {drop}")
    return failures


def verify(artifact: Path, keras_model, evaluation: Dataset, profile: dict, *, runtime: str | None = None
           ) -> dict:
    """Run ``artifact`` on ``evaluation`` in the target's runtime and cross-check runtimes.

    Returns the ``verification`` section of ``report.json`` (with ``passed`` and ``failures``); does not
    raise on a breach, so the caller can write the report first.
    """
    settings = profile.get("verification", {})
    runtime = runtime or settings.get("runtime", "tflm")
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime '{runtime}' (known: {', '.join(RUNTIMES)})", stage=STAGE)
    data = evaluation
    limit = settings.get("max_samples")
    if limit and len(data) > limit:
        data = data.subset(range(limit))
    samples = data.arrays()
    reference = reference_outputs(keras_model, samples)
    outputs = RUNTIMES[runtime](artifact, samples)
    labels = None if evaluation.random else data.labels
    metrics = {"runtime": runtime, **compare(reference, outputs, labels)}
    metrics["cross_check"] = {name: _cross_check(name, artifact, samples, outputs)
                              for name in settings.get("cross_check", []) if name != runtime}
    if evaluation.random:
        metrics["accuracy_note"] = "not measured: random samples (--calibration random)"
    failures = gate(metrics, settings)
    metrics["failures"] = failures
    metrics["passed"] = not failures
    return metrics


def _cross_check(name: str, artifact: Path, samples: dict, outputs: list[np.ndarray]) -> dict:
    """Run the same artifact in another runtime: bit-exact, or by how much it differs."""
    checked = {}
    if name.startswith("litert") and artifact.suffix == ".tflite":
        from .tflm_slim import litert_readable

        why = litert_readable(artifact.read_bytes())
        unslimmed = artifact.parent / "intermediate" / "model_int8.tflite"
        if why is not None:
            if not unslimmed.is_file():
                return {"skipped": f"LiteRT cannot read {why}"}
            # The exporter proved the shipped model bit-exact with this one in TFLite Micro.
            checked = {"model": "intermediate/model_int8.tflite", "why": f"LiteRT cannot read {why}"}
            artifact = unslimmed
    if artifact.suffix == ".h":  # generated C: the other runtime runs the int8 model it was generated from
        from .cbackend.export import reference_model

        artifact = reference_model(artifact)
    other = RUNTIMES[name](artifact, samples)
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(outputs, other))
    agree = float(np.mean(_top1(outputs[0]) == _top1(other[0])))
    return {"bit_exact": diff == 0.0, "max_abs_diff": diff, "top1_agreement": agree, **checked}


def verify_captured(outputs_file: Path, artifact: Path, folder: Path, loaded, evaluation: Dataset,
                    profile: dict, *, explicit_eval: bool = False) -> dict:
    """Check outputs captured on a device (``edgec verify --outputs``) against the float model.

    The inputs are the harness's ``inputs.npz`` (or ``--eval``); labels are used when those inputs are
    the first samples of the build's evaluation set. ``bit_exact`` says whether the device's outputs
    equal the same artifact run here in the target's runtime.
    """
    from .device_outputs import load as load_outputs

    names = list(loaded.inputs)
    if explicit_eval:
        samples, labels = evaluation.arrays(), evaluation.labels
    else:
        path = folder / "harness" / "inputs.npz"
        if not path.is_file():
            raise InputError(f"{folder}: no harness/inputs.npz; pass --eval DATA with the inputs the device ran",
                             stage=STAGE)
        with np.load(path, allow_pickle=False) as f:
            samples = {n: f[n] for n in names}
        head = evaluation.subset(range(min(len(evaluation), len(samples[names[0]]))))
        same = all(np.array_equal(head.arrays()[n], samples[n]) for n in names)
        labels = head.labels if same and not evaluation.random else None
    captured = load_outputs(outputs_file, output_shapes=[s for s, _ in loaded.outputs.values()],
                            inputs=[samples[n] for n in names])
    reference = reference_outputs(loaded.reference, samples)
    runtime = profile.get("verification", {}).get("runtime", "tflm")
    host = RUNTIMES[runtime](artifact, samples)
    metrics = {"device": captured.device, "runtime": captured.runtime, **compare(reference, captured.outputs, labels),
               "bit_exact": all(np.array_equal(a, b) for a, b in zip(captured.outputs, host)),
               "host_runtime": runtime}
    failures = gate(metrics, profile.get("verification", {}))
    return {**metrics, "failures": failures, "passed": not failures}
