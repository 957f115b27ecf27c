"""Per-layer int8 error of an ONNX QDQ build, with ONNX Runtime's ``qdq_loss_debug``.

ONNX Runtime's tools save every activation of the float model and of the QDQ model on the same
inputs, and pair each QDQ activation before and after its QuantizeLinear/DequantizeLinear. Per
tensor we report:

- ``noise_to_signal``: per-channel RMSE / RMS of the QDQ model's tensor against the float model's,
  the metric the TFLite analysis uses (see ``layer_error``): a scale stretched by one outlier
  channel (activation or per-tensor weight) rounds the other channels away and shows up here even
  when a tensor-wide SQNR, dominated by the outlier channel, looks fine;
- ``added_noise_to_signal``: that error minus the largest of its nearest upstream tensors, i.e.
  what this layer added. Layers are ranked by it: everything downstream of a broken layer inherits
  its error, only the broken layer adds it;
- ``qdq_noise_to_signal`` / ``qdq_sqnr_db``: the tensor's own rounding (pre- vs post-QDQ). ORT folds
  a Relu into the quantization range, so for such tensors this compares pre-Relu with post-Relu
  values and overstates the error: reported, not ranked by;
- ``float_sqnr_db``: ORT's SQNR of the QDQ tensor against the float one.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from edgec.core.errors import ToolchainError
from edgec.quantize.layer_error import channel_noise_to_signal

log = logging.getLogger(__name__)


class _Reader:
    """ORT CalibrationDataReader over dict-of-arrays samples, one sample per call."""

    def __init__(self, samples: dict[str, np.ndarray]):
        from onnxruntime.quantization import CalibrationDataReader

        CalibrationDataReader.register(type(self))
        count = len(next(iter(samples.values())))
        self._items = iter([{k: np.asarray(v[i:i + 1], np.float32) for k, v in samples.items()}
                            for i in range(count)])

    def get_next(self):
        return next(self._items, None)

    def __iter__(self):  # collect_activations iterates the reader
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _channel_nsr(reference: list[np.ndarray], quantized: list[np.ndarray]) -> float:

    f = np.concatenate([np.asarray(x, np.float64).reshape(1, *np.shape(x)) for x in reference])
    q = np.concatenate([np.asarray(x, np.float64).reshape(1, *np.shape(x)) for x in quantized])
    if f.ndim >= 4:  # NCHW: channels are axis 1 after the sample axis; the metric wants them last
        f, q = np.moveaxis(f, 2, -1), np.moveaxis(q, 2, -1)
    return channel_noise_to_signal(f, q, 1.0, 0)


def analyze(float_model: Path, qdq_model: Path, samples: dict[str, np.ndarray]) -> list[dict]:
    """Rank the activations of ``qdq_model`` by int8 error on ``samples``; worst first.

    ``samples``: input name -> float arrays (batch first), a few dozen are enough.
    """
    from onnxruntime.quantization import qdq_loss_debug as dbg

    with tempfile.TemporaryDirectory() as d:
        aug_f, aug_q = Path(d) / "float.onnx", Path(d) / "qdq.onnx"
        try:
            dbg.modify_model_output_intermediate_tensors(str(float_model), str(aug_f))
            dbg.modify_model_output_intermediate_tensors(str(qdq_model), str(aug_q))
            float_acts = dbg.collect_activations(str(aug_f), _Reader(samples))
            qdq_acts = dbg.collect_activations(str(aug_q), _Reader(samples))
        except (RuntimeError, ValueError) as e:
            raise ToolchainError(f"onnxruntime qdq_loss_debug failed: {str(e).splitlines()[0]}",
                                 stage="layer-error") from None
    matched = dbg.create_activation_matching(qdq_acts, float_acts)
    errors = dbg.compute_activation_error(matched)
    accumulated = {name: _channel_nsr(m["float"], m["post_qdq"]) for name, m in matched.items()
                   if m.get("float") is not None and m.get("post_qdq") is not None}
    sources = _matched_sources(float_model, set(accumulated))
    layers = []
    for name, total in accumulated.items():
        upstream = max((accumulated[s] for s in sources.get(name, ())), default=0.0)
        match = matched[name]
        layers.append({"layer": name, "tensor": name, "added_noise_to_signal": max(0.0, total - upstream),
                       "noise_to_signal": total,
                       "qdq_noise_to_signal": _channel_nsr(match["pre_qdq"], match["post_qdq"])
                       if match.get("pre_qdq") is not None else None,
                       "qdq_sqnr_db": float(errors[name]["qdq_err"]),
                       "float_sqnr_db": float(errors[name].get("xmodel_err", float("nan")))})
    layers.sort(key=lambda x: (-x["added_noise_to_signal"], x["tensor"]))
    return layers


def _matched_sources(float_model: Path, matched: set[str]) -> dict[str, set[str]]:
    """For each matched tensor, the nearest matched tensors upstream of it in the float graph.

    ORT's QDQ quantizer drops some ops (a Relu folded into the quantization range), so a tensor's
    direct producer inputs are not always matched; walk up until matched tensors are found.
    """
    import onnx

    graph = onnx.load(str(float_model)).graph
    producer = {o: n for n in graph.node for o in n.output}
    constants = {t.name for t in graph.initializer}

    def nearest(tensor: str, seen: set[str]) -> set[str]:
        node = producer.get(tensor)
        if node is None:
            return set()
        found: set[str] = set()
        for i in node.input:
            if not i or i in constants or i in seen:
                continue
            seen.add(i)
            found |= {i} if i in matched else nearest(i, seen)
        return found

    return {name: nearest(name, set()) for name in matched}
