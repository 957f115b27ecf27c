"""``--keep-float`` / ``--max-accuracy-drop`` for ONNX builds: nodes left out of QDQ quantization.

Layers are named as the user knows them (a Keras layer name such as ``mixer``, an ONNX node name, or a
tensor name) and resolved to ONNX nodes. Keeping a node in float also keeps the nodes that read its
output: otherwise their input is quantized again at the same broken scale (the TFLite path found the
same). With ``max_drop``, the tensor that adds the most int8 error (ONNX Runtime's QDQ debugging,
:mod:`edgec.quantize.layer_error_onnx`) is kept in float one at a time until the held-out top-1 drop is within it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


from edgec.core.errors import InputError
from edgec.core.metrics import top1_accuracy
from edgec.quantize.layer_error_onnx import analyze
from edgec.quantize.spec import QuantSpec
from edgec.runtimes.onnxruntime import predict_onnxruntime

log = logging.getLogger(__name__)

MAX_STEPS = 8
# Ops whose int8 output range ONNX Runtime's QDQ quantizer fixes whatever calibration saw
# (onnxruntime/quantization/base_quantizer.py, ``adjust_tensor_ranges``: Softmax -> [0, 1], scale 1/255 in
# uint8). As a graph output that scale erases a flat distribution: 1000 classes at ~1e-3 each all round to 0.
RANGE_FIXED_OPS = ("Softmax",)
# Ops that only move values: a Softmax followed by these still is the graph output (SqueezeNet: Softmax -> Reshape).
_LAYOUT_ONLY = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose")


def resolve_nodes(model: Any, names: Sequence[str]) -> list[str]:
    """ONNX node names for user-given layer, node or tensor names; an unknown name is an InputError."""
    found: list[str] = []
    for name in names:
        hits = [n.name for n in model.graph.node
                if name == n.name or name in n.name.split("/") or name in n.output]
        if not hits:
            raise InputError(f"--keep-float '{name}' matches no node of the ONNX model (node names look like "
                             f"'{model.graph.node[0].name}')", stage="quantize")
        found += [h for h in hits if h not in found]
    return found


def with_consumers(model: Any, nodes: Sequence[str]) -> list[str]:
    """``nodes`` plus every node that reads one of their outputs."""
    outputs = {o for n in model.graph.node if n.name in nodes for o in n.output}
    readers = [n.name for n in model.graph.node if set(n.input) & outputs]
    return list(dict.fromkeys([*nodes, *readers]))


def range_fixed_outputs(model: Any) -> list[str]:
    """Nodes to leave in float because their quantized output range is fixed and they are graph outputs.

    A :data:`RANGE_FIXED_OPS` node whose output reaches a graph output directly or through layout-only
    ops, plus those layout ops. Kept in float, the output carries the probabilities the float model
    computes; its input (the logits) is still int8, so the cost is one float Softmax. Node names must be
    unique and non-empty (:func:`edgec.frontend.onnx.fuse.fuse` names them).
    """
    producers = {o: n for n in model.graph.node for o in n.output}
    keep: list[str] = []
    for output in model.graph.output:
        node, path = producers.get(output.name), []
        while node is not None and node.op_type in _LAYOUT_ONLY and node.input:
            path.append(node.name)
            node = producers.get(node.input[0])
        if node is not None and node.op_type in RANGE_FIXED_OPS:
            keep += [name for name in (node.name, *reversed(path)) if name not in keep]
    return keep


def _producer(model: Any, tensor: str) -> str | None:
    return next((n.name for n in model.graph.node if tensor in n.output), None)


def fit(float_model: Any, float_path: Path, quantize: Callable[[list[str]], Any], evaluation, calibration, *,
        keep: Sequence[str], max_drop: float | None, debug_samples: int = QuantSpec.qdq_debug_samples
        ) -> tuple[Any, dict]:
    """Quantize with ``keep`` (and their readers) in float; with ``max_drop`` add the worst one by one.

    ``quantize(nodes_to_exclude)`` returns a QDQ ModelProto. Returns the final model and the report's
    ``keep_float`` section: each step's float nodes, top-1, drop and size.
    """
    samples = evaluation.arrays()
    reference = predict_onnxruntime(float_path, samples)[0]
    labels = evaluation.labels if evaluation.labels is not None and not evaluation.random else \
        reference.reshape(len(reference), -1).argmax(1)
    float_top1 = top1_accuracy(reference, labels)
    excluded = with_consumers(float_model, resolve_nodes(float_model, keep))
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.onnx"
        for _ in range(MAX_STEPS + 1):
            model = quantize(excluded)
            path.write_bytes(model.SerializeToString(deterministic=True))
            top1 = top1_accuracy(predict_onnxruntime(path, samples)[0], labels)
            steps.append({"kept_float": list(excluded), "top1": top1, "drop": float_top1 - top1,
                          "bytes": path.stat().st_size})
            log.info("onnx keep-float: %s in float: top-1 %.4f", excluded, top1)
            if max_drop is None or float_top1 - top1 <= max_drop:
                break
            calib = calibration.subset(range(min(debug_samples, len(calibration)))).arrays()
            worst = [_producer(float_model, x["tensor"]) for x in analyze(float_path, path, calib)]
            new = next((n for n in worst if n and n not in excluded), None)
            if new is None:
                break
            excluded = with_consumers(float_model, [*excluded, new])
    met = max_drop is None or steps[-1]["drop"] <= max_drop
    return model, {"float_top1": float_top1, "max_drop": max_drop, "met": met, "steps": steps,
                   "cost": {"bytes": steps[-1]["bytes"] - steps[0]["bytes"]}}
