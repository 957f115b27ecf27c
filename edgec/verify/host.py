"""Verification: run the artifact in its real runtime on held-out samples, compare with float.

Metrics (after dequantization): top-1 accuracy of the float reference and of the artifact when labels
exist, top-1 agreement between them, max absolute error and cosine similarity. Thresholds come from
the target profile; a breach is a :class:`GateError` naming the metric (exit 1).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgec.backends.c.export_c import predict as predict_c
from edgec.backends.c.export_c import reference_model
from edgec.backends.onnx.export_onnx import feeds
from edgec.core.calibration import Dataset
from edgec.core.errors import GateError, InputError
from edgec.core.metrics import output_failures, output_metrics, output_warnings, resolve_kinds, snr_db, top1
from edgec.core.tflite_model import signature_outputs
from edgec.device.outputs import load as load_outputs
from edgec.frontend.onnx.lower import run_onnx
from edgec.runtimes.litert import litert_readable
from edgec.runtimes.litert import predict_litert, predict_litert_reference
from edgec.runtimes.onnxruntime import predict_onnxruntime
from edgec.runtimes.openvino import predict_openvino
from edgec.runtimes.tflm import predict_tflm
from edgec.verify.detail import detail

log = logging.getLogger(__name__)

STAGE = "verify"
KIND_CHECK_SAMPLES = 16  # held-out samples that tell a classifier output from a score (a few suffice)
# Runtime name -> predict(artifact, inputs) -> float outputs (see edgec.runtimes.base); a profile's
# verification.runtime and cross_check name these.
RUNTIMES = {
    "tflm": predict_tflm,
    "litert": predict_litert,
    "litert-reference": predict_litert_reference,
    "onnxruntime": predict_onnxruntime,
    "openvino": predict_openvino,
    "c": predict_c,
}


def reference_outputs(keras_model, samples: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Float outputs for stacked samples, as a list (one array per model output).

    ``keras_model`` is a ``tf_keras.Model``, or an ``onnx.ModelProto`` that ONNX Runtime runs (an
    ONNX model kept as ONNX, see :attr:`edgec.frontend.model.LoadedModel.reference`).
    """
    if hasattr(keras_model, "graph"):
        return _onnx_outputs(keras_model, samples)
    names = list(keras_model.input_names)
    feed = [samples[n] for n in names] if all(n in samples for n in names) else list(samples.values())
    out = keras_model(feed if len(feed) > 1 else feed[0], training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, np.float32) for o in out]


def _onnx_outputs(model, samples: dict[str, np.ndarray]) -> list[np.ndarray]:

    initializers = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in initializers]
    return [np.asarray(o, np.float32) for o in run_onnx(model, feeds(samples, names))]


def output_names(keras_model) -> list[str]:
    """The Keras model's output names, in output order."""
    if hasattr(keras_model, "graph"):  # an ONNX model kept as ONNX
        return [o.name for o in keras_model.graph.output]
    return list(getattr(keras_model, "output_names", None) or [])


def match_outputs(outputs: list[np.ndarray], names: list[str], artifact: Path, reference: list[np.ndarray]
                  ) -> list[np.ndarray]:
    """The artifact's outputs in the Keras model's order.

    The TFLite converter orders outputs by signature name (``a_box`` before ``z_probs``), so a ``.tflite``
    artifact's are put back by its signature (or the unslimmed ``intermediate/model_int8.tflite``'s);
    other formats keep the order, unless only matching per-sample shapes pairs them up one way.
    """
    if len(outputs) < 2:
        return outputs
    order = _signature_order(artifact, names, len(outputs))
    if order is None:
        shapes = [o.shape[1:] for o in outputs]
        pairs = [[i for i, s in enumerate(shapes) if s == r.shape[1:]] for r in reference]
        if all(len(p) == 1 for p in pairs) and len({p[0] for p in pairs}) == len(pairs):
            order = [p[0] for p in pairs]
    return [outputs[i] for i in order] if order else outputs


def _signature_order(artifact: Path, names: list[str], count: int) -> list[int] | None:

    artifact = Path(artifact)
    for path in (artifact, artifact.parent / "intermediate" / "model_int8.tflite"):
        if path.suffix == ".tflite" and path.is_file():
            positions = signature_outputs(path.read_bytes())
            if len(names) == count and all(n in positions for n in names):
                return [positions[n] for n in names]
    return None


def _top1(y: np.ndarray) -> np.ndarray:
    return top1(y)


def compare(reference: list[np.ndarray], artifact: list[np.ndarray], labels: np.ndarray | None, *,
            names: list[str] | None = None, settings: dict | None = None) -> dict:
    """The verification metrics for artifact outputs against the float reference.

    ``outputs`` holds one entry per output (:mod:`edgec.core.metrics`: its kind, SNR, cosine, max abs error,
    top-1 for classifiers). The top-level keys are the first output's, as before (``top1_agreement``
    and the top-1 accuracies are null, with ``top1_note``, when it is not a classifier), except
    ``max_abs_err`` and ``nonfinite_outputs``, which cover every output. ``settings`` holds the
    recipe's ``output_kind`` / ``output_kinds``.
    """
    names = list(names or [])[:len(artifact)]
    names += [f"output_{i}" for i in range(len(names), len(artifact))]
    for ref, art, name in zip(reference, artifact, names):
        if ref.shape != art.shape:
            raise GateError(f"artifact output '{name}' shape {art.shape} differs from the float model's "
                            f"{ref.shape}", stage=STAGE)
    kinds = resolve_kinds(reference, names, settings or {}, has_labels=labels is not None)
    outputs = []
    for i, (ref, art, name, (kind, why)) in enumerate(zip(reference, artifact, names, kinds)):
        m = output_metrics(ref, art, kind, labels if i == 0 else None)
        outputs.append({"name": name, "kind_reason": why, **m})
    first = outputs[0]
    metrics = {
        "samples": int(len(reference[0])),
        "nonfinite_outputs": sum(o["nonfinite_outputs"] for o in outputs),
        "output_kind": first["kind"],
        "top1_agreement": first.get("top1_agreement"),
        "max_abs_err": max(o["max_abs_err"] for o in outputs),
        "cosine": first["cosine"],
        "cosine_min": first["cosine_min"],
        "snr_db": first["snr_db"],
        "input_dependent_snr_db": first["input_dependent_snr_db"],
        "reference_top1": first.get("reference_top1"),
        "artifact_top1": first.get("artifact_top1"),
        "outputs": outputs,
    }
    if first["kind"] != "classifier":
        metrics["top1_note"] = f"not measured: output '{first['name']}' is not a classifier ({first['kind_reason']})"
    return metrics


def gate(metrics: dict, thresholds: dict) -> list[str]:
    """Names and values of every threshold the metrics breach (empty list: passed).

    Each output is judged by its kind (:func:`edgec.core.metrics.output_failures`); the top-1 drop applies
    to the first output when labels were given and it is a classifier.
    """
    outputs = metrics.get("outputs") or [{"kind": "classifier", **metrics}]
    named = len(outputs) > 1
    failures = []
    for o in outputs:
        failures += output_failures(o, thresholds, o.get("name", "") if named else "")
    drop = thresholds.get("max_top1_drop")
    if drop is not None and metrics.get("artifact_top1") is not None:
        lost = metrics["reference_top1"] - metrics["artifact_top1"]
        if lost > drop:
            failures.append(f"top-1 drop {lost:.4f} ({metrics['reference_top1']:.4f} -> "
                            f"{metrics['artifact_top1']:.4f}) > {drop}")
    return failures


def verify(artifact: Path, keras_model, evaluation: Dataset, profile: dict, *, runtime: str | None = None,
           kinds: dict | None = None) -> dict:
    """Run ``artifact`` on ``evaluation`` in the target's runtime and cross-check runtimes.

    ``kinds``: the recipe's ``output_kind`` / ``output_kinds`` (:func:`edgec.core.metrics.resolve_kinds`).

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
    names = output_names(keras_model)
    matched = match_outputs(outputs, names, artifact, reference)
    metrics = {"runtime": runtime, **compare(reference, matched, labels, names=names, settings=kinds)}
    metrics["outputs_detail"] = detail(reference, matched, names)
    classifier = metrics["output_kind"] == "classifier"
    metrics["cross_check"] = {name: _cross_check(name, artifact, samples, matched, classifier=classifier,
                                                 order=lambda other: match_outputs(other, names, artifact, reference))
                              for name in settings.get("cross_check", []) if name != runtime}
    if evaluation.random:
        metrics["accuracy_note"] = "not measured: random samples (--calibration random)"
    failures = gate(metrics, settings)
    metrics["failures"] = failures
    metrics["passed"] = not failures
    warnings = [w for o in metrics["outputs"] for w in output_warnings(o, o["name"] if len(names) > 1 else "")]
    if warnings:
        metrics["warnings"] = warnings
        for w in warnings:
            log.warning("%s: %s", profile.get("id", runtime), w)
    return metrics


def _cross_check(name: str, artifact: Path, samples: dict, outputs: list[np.ndarray], *, classifier: bool,
                 order) -> dict:
    """Run the same artifact in another runtime: bit-exact, or by how much it differs (SNR per output;
    top-1 agreement when the first output is a classifier). ``order`` puts the other runtime's outputs
    in the Keras model's order, as ``outputs`` are."""
    checked = {}
    if name.startswith("litert") and artifact.suffix == ".tflite":

        why = litert_readable(artifact.read_bytes())
        unslimmed = artifact.parent / "intermediate" / "model_int8.tflite"
        if why is not None:
            if not unslimmed.is_file():
                return {"skipped": f"LiteRT cannot read {why}"}
            # The exporter proved the shipped model bit-exact with this one in TFLite Micro.
            checked = {"model": "intermediate/model_int8.tflite", "why": f"LiteRT cannot read {why}"}
            artifact = unslimmed
    if artifact.suffix == ".h":  # generated C: the other runtime runs the int8 model it was generated from

        artifact = reference_model(artifact)
    other = order(RUNTIMES[name](artifact, samples))
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(outputs, other))
    agree = float(np.mean(_top1(outputs[0]) == _top1(other[0]))) if classifier else None
    return {"bit_exact": diff == 0.0, "max_abs_diff": diff, "top1_agreement": agree,
            "snr_db": [_finite(snr_db(a, b)) for a, b in zip(outputs, other)], **checked}


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(x, 3)


def verify_captured(outputs_file: Path, artifact: Path, folder: Path, loaded, evaluation: Dataset,
                    profile: dict, *, explicit_eval: bool = False, kinds: dict | None = None) -> dict:
    """Check outputs captured on a device (``edgec verify --outputs``) against the float model.

    The inputs are the harness's ``inputs.npz`` (or ``--eval``); labels are used when those inputs are
    the first samples of the build's evaluation set. ``bit_exact`` says whether the device's outputs
    equal the same artifact run here in the target's runtime.
    """
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
    matched = match_outputs(captured.outputs, list(loaded.outputs), artifact, reference)
    measured = compare(reference, matched, labels, names=list(loaded.outputs), settings=kinds)
    metrics = {"device": captured.device, "runtime": captured.runtime, **measured,
               "bit_exact": all(np.array_equal(a, b) for a, b in zip(captured.outputs, host)),
               "host_runtime": runtime}
    failures = gate(metrics, profile.get("verification", {}))
    return {**metrics, "failures": failures, "passed": not failures}


def check_drop_kind(recipe: dict, keras_model, held_out: Dataset) -> None:
    """``--max-accuracy-drop`` (call it when given) is a top-1 drop: refuse it when the first output is
    not a classifier. ``recipe`` holds ``output_kind(s)``, which override the inferred kind."""
    head = held_out.subset(range(min(KIND_CHECK_SAMPLES, len(held_out))))
    reference = reference_outputs(keras_model, head.arrays())
    names = output_names(keras_model) or [f"output_{i}" for i in range(len(reference))]
    has_labels = not held_out.random and held_out.labels is not None
    kind, why = resolve_kinds(reference, names, recipe, has_labels=has_labels)[0]
    if kind != "classifier":
        raise InputError(f"--max-accuracy-drop measures a top-1 drop, but output '{names[0]}' is {kind} ({why}); "
                         "use --keep-float LAYER and the verification metrics (SNR, cosine, max abs error), or "
                         "set output_kind = \"classifier\" in the recipe", stage="compile")
