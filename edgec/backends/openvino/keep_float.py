"""``--keep-float`` / ``--max-accuracy-drop`` for OpenVINO builds, with NNCF's own machinery.

``--keep-float LAYER`` becomes an ``nncf.IgnoredScope`` of the layer's operations and their readers
(NNCF places FakeQuantize on the *inputs* of operations, so the readers' quantizers are the ones that
would round the layer's output). ``--max-accuracy-drop X`` runs ``nncf.quantize_with_accuracy_control``: NNCF
quantizes, ranks its quantizers by how much each costs on the held-out samples, and reverts the worst
to float until the top-1 drop (against labels, or agreement with the float model without them) is
within X. Which operations ended in float is read back from the result: those that read a
FakeQuantize in the plain INT8 model and no longer do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgec.backends.openvino.nncf_quantize import (bias_correction, model_inputs, nncf_items, nncf_settings,
                                                    per_tensor_misplaced, quantize)
from edgec.core.errors import InputError, ToolchainError
from edgec.quantize.spec import QuantSpec
from edgec.runtimes.openvino import openvino_reason

log = logging.getLogger(__name__)

STAGE = "export-openvino"
_NOT_OPS = {"Constant", "Parameter", "Result", "FakeQuantize", "Convert"}


def _names(op: Any) -> list[str]:
    """The op's own name and those of the constants it reads (through at most one Convert or the like).

    tf2onnx names some nodes by position (a depthwise convolution becomes ``Conv__3``), but their
    weights keep the Keras layer's name (``model/dwconv/BiasAdd/ReadVariableOp``).
    """
    names = [op.get_friendly_name()]
    for value in op.input_values():
        src = value.get_node()
        if src.get_type_name() == "Constant":
            names.append(src.get_friendly_name())
        elif src.get_type_name() in ("Convert", "Multiply", "Subtract", "Reshape"):
            names += [v.get_node().get_friendly_name() for v in src.input_values()
                      if v.get_node().get_type_name() == "Constant"]
    return names


def _matches(name: str, names: list[str]) -> bool:
    return any(name == n or name in n.split("/") for n in names)


def _onnx_nodes(onnx_model: Any, name: str) -> list[str]:
    """ONNX nodes of a layer: by node name, output, or an initializer (weight) they read."""
    if onnx_model is None:
        return []
    weights = {t.name for t in onnx_model.graph.initializer}
    return [n.name for n in onnx_model.graph.node
            if _matches(name, [n.name, *n.output, *(i for i in n.input if i in weights)])]


def resolve_ops(ov_model: Any, names: Sequence[str], onnx_model: Any = None) -> list[str]:
    """OpenVINO operation names for user-given layer names (whole name or one ``/`` segment), with readers.

    An operation matches by its own name, by the constants (weights, biases) it reads, or as the
    conversion of an ONNX node of ``onnx_model`` that matches (OpenVINO names ops after ONNX nodes,
    ``Conv__3`` -> ``Conv__3/WithoutBiases``, and may fold the weights into unnamed constants). The
    operations that read a kept operation's output are kept too: NNCF quantizes an operation's
    inputs, so the reader's FakeQuantize is the one that would round the kept layer's output (measured
    on an outlier layer: ignoring only the layer itself left top-1 at 9%).
    """
    found: list[str] = []
    ops = [op for op in ov_model.get_ordered_ops() if op.get_type_name() not in _NOT_OPS]
    for name in names:
        nodes = _onnx_nodes(onnx_model, name)
        hits = [op.get_friendly_name() for op in ops if _matches(name, _names(op))
                or any(op.get_friendly_name() == n or op.get_friendly_name().startswith(n + "/") for n in nodes)]
        if not hits:
            raise InputError(f"--keep-float '{name}' matches no operation of the OpenVINO model (names look "
                             f"like '{ops[0].get_friendly_name()}')", stage="quantize")
        found += [h for h in hits if h not in found]
    readers = [target.get_node() for op in ops if op.get_friendly_name() in found
               for output in op.outputs() for target in output.get_target_inputs()]
    found += [r.get_friendly_name() for r in readers
              if r.get_type_name() not in _NOT_OPS and r.get_friendly_name() not in found]
    return found


def quantized_ops(ov_model: Any) -> set[str]:
    """Names of the operations that read at least one FakeQuantize output (they run in INT8)."""
    out = set()
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            for target in op.output(0).get_target_inputs():
                out.add(target.get_node().get_friendly_name())
    return out


def _top1(compiled: Any, items: list[tuple]) -> np.ndarray:

    return np.array([int(np.argmax(compiled(model_inputs(x))[0])) for x in items])


def fit(ov_model: Any, calibration: Any, evaluation: Any, *, max_drop: float, kept: list[str],
        calibration_method: str, overflow_fix: str, limit: int = QuantSpec.nncf_calibration_samples
        ) -> tuple[Any, dict]:
    """``nncf.quantize_with_accuracy_control`` within ``max_drop``; returns the model and ``keep_float``.

    The report's two steps are the all-INT8 model (with ``kept`` ignored) and NNCF's result.
    """
    import nncf
    import openvino as ov

    core = ov.Core()
    calib = nncf_items(ov_model, calibration, limit=limit)
    held_out = nncf_items(ov_model, evaluation)
    float_top1 = _top1(core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), held_out)
    has_labels = evaluation.labels is not None and not evaluation.random
    labels = np.asarray(evaluation.labels) if has_labels else float_top1
    items = [(x, int(label)) for x, label in zip(held_out, labels)]

    def validate(compiled: Any, data) -> tuple[float, list[float]]:
        data = list(data)
        hits = (_top1(compiled, [x for x, _ in data]) == np.array([y for _, y in data])).astype(float)
        return float(hits.mean()), hits.tolist()

    plain = quantize(ov_model.clone(), calibration, limit=limit, calibration_method=calibration_method,
                     overflow_fix=overflow_fix, ignored=kept or None)
    rest = nncf_settings(calibration_method=calibration_method, overflow_fix=overflow_fix, ignored=kept or None,
                         correction=bias_correction(ov_model))
    advanced = rest.pop("advanced")
    try:
        model = nncf.quantize_with_accuracy_control(
            ov_model, nncf.Dataset(calib, model_inputs), nncf.Dataset(items, lambda item: model_inputs(item[0])),
            validate, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib),
            advanced_quantization_parameters=advanced, **rest)
    except (RuntimeError, ValueError, nncf.ValidationError) as e:
        raise ToolchainError(f"nncf.quantize_with_accuracy_control failed: {openvino_reason(e)}",
                             stage=STAGE) from None
    per_tensor_misplaced(model)
    reference = float((float_top1 == labels).mean())
    remaining = quantized_ops(model)
    all_reverted = not remaining
    if all_reverted:  # an FP32 model is no answer for an INT8 target: ship the all-INT8 one, say why
        log.warning("NNCF's accuracy control reverted every INT8 operation; keeping the all-INT8 model")
        model, remaining = plain, quantized_ops(plain)
    scores = {}
    for name, m in (("int8", plain), ("final", model)):
        scores[name] = float((_top1(core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}),
                                    held_out) == labels).mean())
    reverted = sorted(quantized_ops(plain) - remaining)
    drop = reference - scores["final"]
    log.info("openvino accuracy control: %s back in float, top-1 %.4f -> %.4f", reverted, scores["int8"],
             scores["final"])
    section = {"tool": "nncf.quantize_with_accuracy_control", "float_top1": reference,
               "int8_operations": len(remaining), "max_drop": max_drop, "met": drop <= max_drop + 1e-9,
               "steps": [{"kept_float": list(kept), "top1": scores["int8"], "drop": reference - scores["int8"]}]}
    if all_reverted:
        section["note"] = ("NNCF met the drop only by reverting every INT8 operation (an FP32 model); the all-INT8 "
                           "model is kept: name the layer int8 breaks with --keep-float LAYER")
    else:
        section["steps"].append({"kept_float": list(kept) + reverted, "top1": scores["final"], "drop": drop})
    return model, section
