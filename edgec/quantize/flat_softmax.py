"""A Softmax output too flat for int8, left in float on runtimes that mix float and int8 operators.

TFLite's int8 SOFTMAX writes probabilities at a fixed scale of 1/256 (zero point -128), whatever the
calibration saw, as ONNX Runtime's quantizer does (:mod:`edgec.quantize.keep_float_onnx`). A
probability under half a step, 1/512, becomes 0. A 1000-class output whose probabilities all sit near
1/1000 (the onnx wheel's light-zoo models, whose weights are constants; an untrained classifier head)
comes out as all zeros: top-1 is class 0 for every input and the cosine with the float output is 0. On
LiteRT, which runs float and int8 operators side by side, such a Softmax stays float: its int8 logits
are dequantized and the probabilities keep their resolution, at the cost of one float softmax.

The rule uses the float model's outputs on the calibration samples (no timing, no accuracy search): a
Softmax graph output whose largest probability is under ``FLAT_STEPS`` int8 steps for the median sample.
A trained classifier's top probability is tens to hundreds of steps, so its artifact is unchanged.
Microcontroller formats stay all-int8 (TFLite Micro's and the C backend's int8 softmax).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgec.core.tflite_model import parse

FLAT_STEPS = 4  # int8 output steps (of 1/256): a median top probability below 4/256 = 0.0156 is "flat"
_STEP = 1.0 / 256.0


# Layers and TFLite ops that only move or relabel values: a softmax output may pass through them (an ONNX
# model's N x 1000 x 1 x 1 reshape and the NCHW layout permute) and they stay float with it.
_LAYOUT_LAYERS = ("Permute", "Reshape", "Flatten")
_LAYOUT_FUNCTIONS = ("reshape", "transpose", "squeeze", "expand_dims", "compat.v1.transpose")
_LAYOUT_OPS = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS")


def _is_layout(layer) -> bool:
    name = type(layer).__name__
    return name in _LAYOUT_LAYERS or (name in ("TFOpLambda", "SlicingOpLambda")
                                      and layer.get_config().get("function", "").removeprefix("tf.")
                                      in _LAYOUT_FUNCTIONS)


def _is_softmax(layer) -> bool:
    name = type(layer).__name__
    return name == "Softmax" or (name == "Activation" and layer.get_config().get("activation") == "softmax")


def softmax_outputs(keras_model) -> list[int]:
    """Positions of the Keras model's outputs computed by a softmax layer (a ``Softmax`` layer or an
    ``Activation("softmax")``, possibly followed by reshapes and permutes); a Dense layer's fused
    softmax cannot be split off and is not listed."""
    found = []
    for i, tensor in enumerate(keras_model.outputs):
        layer = tensor._keras_history[0] if hasattr(tensor, "_keras_history") else None
        while layer is not None and _is_layout(layer):
            inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
            inbound = inbound if isinstance(inbound, list) else [inbound]
            layer = inbound[0] if len(inbound) == 1 else None
        if layer is not None and _is_softmax(layer):
            found.append(i)
    return found


def median_top_probability(outputs: np.ndarray) -> float:
    """The median over samples of each sample's largest value (batch first)."""
    rows = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    return float(np.median(rows.max(axis=1))) if rows.size else 1.0


def is_flat(outputs: np.ndarray) -> bool:
    """Whether int8's fixed 1/256 softmax scale cannot hold these probabilities (see the module doc)."""
    return median_top_probability(outputs) < FLAT_STEPS * _STEP


def tflite_softmax_outputs(float_tflite: bytes) -> dict[int, tuple[list[str], tuple[int, ...]]]:
    """Output position -> (the names of the SOFTMAX output and the layout tensors after it, the output's
    shape without the batch), for each output of the float ``.tflite`` written by SOFTMAX (directly or
    through RESHAPE / TRANSPOSE / SQUEEZE / EXPAND_DIMS). The names are what the TFLite quantizer's
    ``denylisted_nodes`` match."""
    model = parse(float_tflite)
    producer = {op.outputs[0]: op for op in model.operators if op.outputs}
    found = {}
    for position, t in enumerate(model.outputs):
        chain, op = [t], producer.get(t)
        while op is not None and op.name in _LAYOUT_OPS:
            chain.append(op.inputs[0])
            op = producer.get(op.inputs[0])
        if op is not None and op.name == "SOFTMAX":
            found[position] = ([model.tensors[i].name for i in reversed(chain)], tuple(model.tensors[t].shape[1:]))
    return found


def choose(flat: Sequence[int], float_tflite: bytes, reference: Sequence[np.ndarray]) -> tuple[list[str], dict]:
    """The SOFTMAX output tensors to keep in float and the report's ``flat_softmax`` section.

    ``flat`` are the Keras output positions :func:`is_flat` found; ``reference`` the float outputs on the
    calibration samples. The converter may order a multi-output model's outputs its own way, so a flat
    Keras output is matched to the one softmax output of its shape; when that is ambiguous it stays int8.
    """
    chains = tflite_softmax_outputs(float_tflite)
    matched = {}
    for i in flat:
        shape = tuple(np.asarray(reference[i]).shape[1:])
        same = [p for p, (_, s) in chains.items() if s == shape]
        if len(chains) == 1 and len(reference) == 1:
            same = list(chains)
        if len(same) == 1:
            matched[i] = chains[same[0]][0]
    if not matched:
        return [], {}
    keep = [name for chain in matched.values() for name in chain]
    section = {"nodes": keep,
               "median_top_probability": [round(median_top_probability(reference[i]), 6) for i in matched],
               "why": f"a Softmax output whose median top probability is under {FLAT_STEPS}/256: TFLite's int8 "
                      "softmax writes at a fixed 1/256 step, which rounds such probabilities to 0"}
    return keep, section
