"""Lower an ONNX graph to a ``tf_keras`` functional model, NCHW -> NHWC, and check it against ORT.

The lowered model lets ONNX models take the whole Keras pipeline (pruning, clustering, the TFLite
converter's INT8, TFLite Micro). Layout is handled by tracking, for every ONNX value, a permutation
``perm`` with ``keras_tensor == np.transpose(onnx_value, perm)``. Convolutions and pools want NHWC,
i.e. ``perm == (0, 2, 3, 1)`` on a 4-D NCHW value; element-wise ops keep whatever layout they get;
an ONNX ``Transpose`` only changes ``perm`` (no Keras op at all, so the Transpose pairs that tf2onnx
puts around every convolution vanish); ops whose meaning depends on memory order (Reshape, Flatten,
Squeeze, Unsqueeze) first bring their input back to the ONNX layout. Graph inputs and outputs keep
the ONNX layout, so calibration data for the ONNX model feeds the Keras model unchanged.

Real Keras layers (Conv2D, DepthwiseConv2D, Dense, BatchNormalization, pools, ...) are used wherever
one exists, so that TF-MOT can prune and cluster them; the rest are TensorFlow ops (``TFOpLambda``).
The operator table is :data:`SUPPORTED_OPS`; anything else is an :class:`InputError`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgec.core.errors import InputError, ToolchainError
from edgec.core.metrics import range_relative_error
from edgec.frontend.onnx import lower_ops as onnx_lower_ops
from edgec.frontend.onnx.graph import random_inputs
from edgec.frontend.onnx.lowering import STAGE, Lowering

log = logging.getLogger(__name__)

SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv",
    "ConvTranspose", "Div", "Dropout", "Erf", "Expand", "Flatten", "Gather", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LayerNormalization", "LeakyRelu", "LRN", "MatMul",
    "Max", "MaxPool", "Min", "Mul", "Pad",
    "PRelu", "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Sigmoid", "Slice", "Softmax", "Split",
    "Squeeze", "Sub", "Sum", "Tanh", "Transpose", "Unsqueeze",
)
CHECK_TOLERANCE = 1e-4  # max abs error / output range


def lower(model: Any, *, name: str = "lowered_onnx") -> Any:
    """Lower an ONNX model (read by :func:`edgec.frontend.onnx.read.read`) to a float ``tf_keras.Model``.

    Raises :class:`InputError` naming the node and op for an operator outside :data:`SUPPORTED_OPS`
    or an attribute combination the lowering does not cover.
    """
    _refuse_unsupported(model)
    state = Lowering(model)
    keras = state.keras
    inputs = []
    for v in model.graph.input:
        if v.name in state.values:
            continue
        shape = state.shape(v.name)
        tensor = keras.Input(shape=shape[1:], name=state.name_for(v.name, ""), dtype="float32")
        inputs.append(tensor)
        state.set(v.name, tensor, tuple(range(len(shape))))
    for index, node in enumerate(model.graph.node):
        if index in state.skip:
            continue
        handler = onnx_lower_ops.HANDLERS[node.op_type]
        try:
            handler(state, node, index)
        except InputError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise InputError(f"node '{node.name}' ({node.op_type}): cannot lower: {str(e).splitlines()[0]}",
                             stage=STAGE) from None
    outputs = []
    for v in model.graph.output:
        if state.values[v.name].is_const:
            raise InputError(f"output '{v.name}' is a constant; nothing to compile", stage=STAGE)
        outputs.append(state.onnx_layout(v.name))
    return keras.Model(inputs, outputs, name=name)


def _refuse_unsupported(model: Any) -> None:
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
            raise InputError(f"node '{node.name}': operator {op} is not supported by the ONNX lowering "
                             f"(supported: {', '.join(SUPPORTED_OPS)})", stage=STAGE)


def run_onnx(model: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run an ONNX model in ONNX Runtime (CPU), one sample at a time (the batch may be fixed to 1)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    count = len(next(iter(inputs.values())))
    outs: list[list[np.ndarray]] = [[] for _ in session.get_outputs()]
    for n in range(count):
        feed = {k: v[n:n + 1] for k, v in inputs.items()}
        for i, y in enumerate(session.run(None, feed)):
            outs[i].append(y)
    return [np.concatenate(o) for o in outs]


def _reference(model: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime's outputs; a model the checker passed but ORT refuses (group 0, ...) is bad input."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph

    try:
        return run_onnx(model, feed)
    except (Fail, InvalidArgument, InvalidGraph) as e:
        raise InputError(f"ONNX Runtime cannot run the model: {str(e).strip().splitlines()[0][:300]}",
                         stage=STAGE) from None


def check(model: Any, keras_model: Any, inputs: dict[str, np.ndarray] | None = None, *,
          samples: int = 4, seed: int = 0, tolerance: float = CHECK_TOLERANCE) -> dict[str, float]:
    """Compare the lowered Keras model with ONNX Runtime on random (and given) inputs.

    The error of each output is :func:`edgec.core.metrics.range_relative_error` (max abs error over the
    output's range, floored for a near-constant output); above ``tolerance`` raises
    :class:`ToolchainError`. Returns ``{"samples": n, "max_rel_err": e}``.
    """
    feeds = [random_inputs(model, samples=samples, seed=seed)]
    if inputs is not None:
        feeds.append({k: np.asarray(v, np.float32) for k, v in inputs.items()})
    worst, total = 0.0, 0
    for feed in feeds:
        reference = _reference(model, feed)
        ordered = [feed[v.name] for v in model.graph.input if v.name in feed]
        lowered = keras_model(ordered if len(ordered) > 1 else ordered[0], training=False)
        lowered = lowered if isinstance(lowered, (list, tuple)) else [lowered]
        for ref, got, out in zip(reference, lowered, model.graph.output):
            err = range_relative_error(ref, np.asarray(got))
            worst = max(worst, err)
            if err > tolerance:
                raise ToolchainError(f"lowered Keras model differs from ONNX Runtime on output '{out.name}':"
                                     f" max abs error {err:.2e} of the output range (limit {tolerance:g})",
                                     stage=STAGE)
        total += len(next(iter(feed.values())))
    log.info("lowering check: %d samples, max error %.2e of the output range", total, worst)
    return {"samples": total, "max_rel_err": worst}
