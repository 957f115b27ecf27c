"""Graph fusion on ONNX models, staying within standard ONNX operators.

Passes, in order: drop Identity/Dropout, constant folding (nodes whose inputs are all constants are
evaluated with ``onnx.reference`` and become initializers), Conv+BatchNormalization and
Gemm+BatchNormalization (the BN is folded into the weights and bias; OpenVINO's CPU plugin computed
wrong int8 results single-threaded for an unfolded Gemm+BN, the TorchScript export of an MLP),
MatMul+Add -> Gemm (2-D, constant weight and bias).

Conv+activation is *not* rewritten here: standard ONNX has no fused convolution-with-activation
operator (ORT's ``FusedConv`` is a contrib op in the ``com.microsoft`` domain that other runtimes
cannot read). Both runtimes do this fusion themselves when the session/compiled model is created
(ORT at ``ORT_ENABLE_EXTENDED``, OpenVINO's CPU plugin always), so the artifact stays portable; the
report counts the Conv+activation pairs left for the runtime (``conv_activation_pairs``).

:func:`fuse` returns the new model and operator counts before/after; :func:`check_equal` runs both
in ONNX Runtime (its own optimizations off) and requires equal outputs.
"""

from __future__ import annotations

import collections
import copy
import logging
from typing import Any

import numpy as np

from edgec.core.errors import ToolchainError
from edgec.core.metrics import range_relative_error
from edgec.frontend.onnx.graph import random_inputs

log = logging.getLogger(__name__)

STAGE = "fuse-onnx"
ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish")
_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}


def op_counts(model: Any) -> dict[str, int]:
    """Operator type -> number of nodes, sorted by type."""
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


def fuse(model: Any) -> tuple[Any, dict[str, Any]]:
    """Apply the fusion passes to a copy of ``model``; return it and ``{"before", "after", ...}``."""
    import onnx

    before = op_counts(model)
    model = copy.deepcopy(model)
    _drop_identities(model)
    folded = _fold_constants(model)
    conv_bn = _fuse_conv_bn(model)
    gemm = _fuse_matmul_add(model)
    _name_nodes(model)
    onnx.checker.check_model(model)
    after = op_counts(model)
    counts = {"before": before, "after": after, "nodes_before": sum(before.values()),
              "nodes_after": sum(after.values()), "constants_folded": folded, "conv_bn_fused": conv_bn,
              "matmul_add_fused": gemm, "conv_activation_pairs": _conv_activation_pairs(model)}
    log.info("ONNX fusion: %d -> %d nodes", counts["nodes_before"], counts["nodes_after"])
    return model, counts


def _name_nodes(model: Any) -> None:
    """Give every unnamed node a unique name (``Flatten_12``: op type and position).

    ONNX Runtime's quantizer excludes nodes by name (``nodes_to_exclude``), so an empty name would
    exclude every unnamed node at once; exporters and onnxslim leave some nodes unnamed.
    """
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _consumers(model: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = collections.defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def _graph_outputs(model: Any) -> set[str]:
    return {o.name for o in model.graph.output}


def _initializers(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _set_initializer(model: Any, name: str, value: np.ndarray) -> None:
    from onnx import numpy_helper

    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))
            return
    model.graph.initializer.append(numpy_helper.from_array(value, name))


def _rename_input(model: Any, old: str, new: str) -> None:
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _remove_unused_initializers(model: Any) -> None:
    used = {n for node in model.graph.node for n in node.input} | _graph_outputs(model)
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _drop_identities(model: Any) -> None:
    outputs = _graph_outputs(model)
    for node in list(model.graph.node):
        if node.op_type in ("Identity", "Dropout") and node.output[0] not in outputs \
                and all(o not in outputs for o in node.output[1:]):
            _rename_input(model, node.output[0], node.input[0])
            model.graph.node.remove(node)


def _fold_constants(model: Any) -> int:
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    consts = set(_initializers(model))
    folded = 0
    for node in list(model.graph.node):
        if node.op_type in _NOT_FOLDABLE or node.domain not in ("", "ai.onnx") \
                or not all(n in consts for n in node.input if n):
            continue
        values = _initializers(model)
        graph = helper.make_graph([node], "fold", [], [helper.make_value_info(o, helper.TypeProto())
                                                       for o in node.output],
                                  [numpy_helper.from_array(values[n], n) for n in node.input if n])
        sub = helper.make_model(graph, opset_imports=model.opset_import)
        results = ReferenceEvaluator(sub).run(None, {})
        for name, value in zip(node.output, results):
            _set_initializer(model, name, np.asarray(value))
            consts.add(name)
        model.graph.node.remove(node)
        folded += 1
    _remove_unused_initializers(model)
    return folded


def _fuse_conv_bn(model: Any) -> int:
    from onnx import helper

    consumers, outputs, fused = _consumers(model), _graph_outputs(model), 0
    for bn in list(model.graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        producer = next((n for n in model.graph.node if bn.input[0] in n.output), None)
        values = _initializers(model)
        if producer is None or producer.op_type not in ("Conv", "Gemm") or len(consumers[bn.input[0]]) != 1 \
                or bn.input[0] in outputs or producer.input[1] not in values \
                or not all(n in values for n in bn.input[1:]) \
                or (len(producer.input) > 2 and producer.input[2] not in values):
            continue
        eps = next((helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale, shift, mean, var = (values[n].astype(np.float64) for n in bn.input[1:5])
        factor = scale / np.sqrt(var + eps)
        weight = values[producer.input[1]].astype(np.float64)
        bias = values[producer.input[2]].astype(np.float64) if len(producer.input) > 2 else 0.0
        if producer.op_type == "Gemm":  # Linear + BatchNorm1d, as the TorchScript exporter leaves it
            shape = _gemm_scale_shape(producer, weight, bias, factor.size)
            if shape is None:
                continue
        else:
            shape = (-1, 1, 1, 1)  # Conv weight: output channels first
        dtype = values[producer.input[1]].dtype
        w_name, b_name = producer.input[1] + "_bnfused", bn.output[0] + "_bias_bnfused"
        _set_initializer(model, w_name, (weight * factor.reshape(shape)).astype(dtype))
        _set_initializer(model, b_name, ((bias - mean) * factor + shift).astype(dtype))
        del producer.input[1:]
        producer.input.extend([w_name, b_name])
        producer.output[0] = bn.output[0]
        model.graph.node.remove(bn)
        fused += 1
    _remove_unused_initializers(model)
    return fused


def _gemm_scale_shape(gemm: Any, weight: np.ndarray, bias: Any, channels: int) -> tuple[int, int] | None:
    """How a per-output-channel factor broadcasts over a Gemm's weight, or None when it cannot fold.

    Only a plain ``A @ B (+ C)`` folds: alpha and beta 1, a 2-D weight, a bias of one value per output.
    """
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or weight.ndim != 2:
        return None
    trans_b = attrs.get("transB", 0)
    outputs = weight.shape[0] if trans_b else weight.shape[1]
    if outputs != channels or (np.ndim(bias) and np.size(bias) != channels):
        return None
    return (-1, 1) if trans_b else (1, -1)


def _fuse_matmul_add(model: Any) -> int:
    from onnx import helper

    consumers, outputs, fused = _consumers(model), _graph_outputs(model), 0
    shapes = _ranks(model)
    for mm in list(model.graph.node):
        values = _initializers(model)
        if mm.op_type != "MatMul" or mm.input[1] not in values or values[mm.input[1]].ndim != 2 \
                or shapes.get(mm.input[0]) != 2 or mm.output[0] in outputs \
                or len(consumers[mm.output[0]]) != 1:
            continue
        add = consumers[mm.output[0]][0]
        other = [n for n in add.input if n != mm.output[0]]
        n_out = values[mm.input[1]].shape[1]
        if add.op_type != "Add" or len(other) != 1 or other[0] not in values \
                or values[other[0]].size != n_out or values[other[0]].shape[-1] != n_out:
            continue
        bias_name = other[0] + "_gemm_bias"
        _set_initializer(model, bias_name, values[other[0]].reshape(n_out))
        gemm = helper.make_node("Gemm", [mm.input[0], mm.input[1], bias_name], [add.output[0]],
                                name=(mm.name or "matmul") + "_gemm")
        position = list(model.graph.node).index(mm)
        model.graph.node.remove(mm)
        model.graph.node.remove(add)
        model.graph.node.insert(position, gemm)
        fused += 1
    _remove_unused_initializers(model)
    return fused


def _ranks(model: Any) -> dict[str, int]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: len(v.type.tensor_type.shape.dim)
            for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
            if v.type.tensor_type.HasField("shape")}


def _conv_activation_pairs(model: Any) -> int:
    consumers = _consumers(model)
    return sum(1 for n in model.graph.node if n.op_type == "Conv"
               and len(consumers[n.output[0]]) == 1 and consumers[n.output[0]][0].op_type in ACTIVATIONS)


def check_equal(original: Any, fused: Any, *, samples: int = 4, seed: int = 0,
                tolerance: float = 1e-5) -> float:
    """Run both models in ONNX Runtime on random inputs; ToolchainError unless outputs agree.

    Returns the largest difference relative to each output's range.
    """
    import onnxruntime as ort

    feed = random_inputs(original, samples=samples, seed=seed)
    results = []
    for model in (original, fused):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        runs = [session.run(None, {k: v[i:i + 1] for k, v in feed.items()}) for i in range(samples)]
        results.append([np.concatenate(o) for o in zip(*runs)])
    worst = 0.0
    for a, b in zip(*results):
        worst = max(worst, range_relative_error(a, b))
    if worst > tolerance:
        raise ToolchainError(f"fused ONNX model differs from the original by {worst:.2e} of the output "
                             f"range (limit {tolerance:g})", stage=STAGE)
    return worst
