"""``edgec inspect MODEL --target ID``: which of a model's operators each target can run, and why not.

The answer comes from the toolchain each target uses, not from a hand-kept list where one exists:

- ``onnx`` targets: ONNX Runtime's own kernel registry for the CPU execution provider (op, domain and
  the model's opset must fall in a registered kernel's version range).
- ``openvino`` targets: OpenVINO's ONNX front end converts the model partially; operators it cannot
  convert remain ``ONNXFrameworkNode``s. The converted model is then queried on the CPU plugin (GPU
  and NPU plugins are not present on a build machine; their support is not claimed).
- TFLite targets (``tflm``, ``litert``, ``c``): an ONNX operator must be in the lowering's set
  (:data:`edgec.frontend.onnx.lower.SUPPORTED_OPS`) and the TFLite builtins it becomes
  (:data:`TFLITE_BUILTINS`) must be in the profile's ``operators.allowed`` (LiteRT: any builtin).

Keras models are converted to ONNX with tf2onnx first, so every target is judged on the same graph.
An operator nothing can run is an answer, not an error: ``inspect`` exits 0 for any readable model.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any

from edgec.backends.c.codegen import OPS
from edgec.backends.onnx.export_onnx import keras_to_onnx
from edgec.core import targets
from edgec.core.errors import InputError
from edgec.core.formats import FORMATS
from edgec.frontend.load import kind_of, load
from edgec.frontend.onnx.lower import SUPPORTED_OPS
from edgec.frontend.onnx.read import fold, read
from edgec.frontend.onnx.summary import summary

log = logging.getLogger(__name__)

STAGE = "inspect"
# ONNX operator -> the TFLite builtins the lowering + TFLite converter turn it into (one of each tuple
# entry; an empty tuple means it is folded away: BN into the convolution, Transpose into the layout).
TFLITE_BUILTINS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Add": (("ADD",),), "AveragePool": (("AVERAGE_POOL_2D",),), "BatchNormalization": (),
    "Clip": (("RELU6", "RELU", "MINIMUM"),), "Concat": (("CONCATENATION",),), "Constant": (),
    "Conv": (("CONV_2D", "DEPTHWISE_CONV_2D"),), "ConvTranspose": (("TRANSPOSE_CONV",),),
    "Div": (("MUL",),), "Dropout": (), "Flatten": (("RESHAPE",),), "Gemm": (("FULLY_CONNECTED",),),
    "GlobalAveragePool": (("MEAN",),), "HardSigmoid": (("MUL",), ("ADD",), ("RELU6", "MINIMUM")),
    "HardSwish": (("HARD_SWISH",),), "Identity": (), "LeakyRelu": (("LEAKY_RELU",),),
    "MatMul": (("FULLY_CONNECTED", "BATCH_MATMUL"),), "MaxPool": (("MAX_POOL_2D",),), "Mul": (("MUL",),),
    "Pad": (("PAD", "PADV2"),), "Relu": (("RELU",),), "Reshape": (("RESHAPE",),),
    "Resize": (("RESIZE_NEAREST_NEIGHBOR",),), "Sigmoid": (("LOGISTIC",),), "Softmax": (("SOFTMAX",),),
    "Split": (("SPLIT", "SPLIT_V"),), "Squeeze": (("RESHAPE",),), "Sub": (("SUB",),),
    "Tanh": (("TANH",),), "Transpose": (), "Unsqueeze": (("RESHAPE",),),
    "Cast": (), "GlobalMaxPool": (("REDUCE_MAX",),), "Max": (("MAXIMUM",),), "Min": (("MINIMUM",),),
    "PRelu": (("PRELU",),), "ReduceMax": (("REDUCE_MAX",),), "ReduceMean": (("MEAN",),),
    "Slice": (("STRIDED_SLICE", "SLICE"),), "Sum": (("ADD",),), "Erf": (("LOGISTIC",), ("MUL",), ("ADD",), ("MAXIMUM",), ("MINIMUM",)), "Expand": (("MUL",),),
    "Gather": (("GATHER",),), "LayerNormalization": (("MEAN",), ("SQUARED_DIFFERENCE",), ("RSQRT",)),
    # beta in quarters (every zoo model): RSQRT; any other beta: LOG and EXP (no int8 LOG in TFLite Micro).
    "LRN": (("MUL",), ("CONV_2D",), ("RSQRT", "LOG")),
}


# Operators the lowering takes only as part of a pattern (a bare one is refused when lowering).
PATTERN_ONLY = {"Erf": "lowered only inside GELU, 0.5 * x * (1 + erf(x / sqrt(2))), which "}


def onnx_model_of(path: str | Path, *, trust_model: bool = False) -> tuple[Any, int | None]:
    """The ONNX graph inspected for ``path`` (read safely, or converted from Keras with tf2onnx), and
    for a Keras model its own parameter count (Keras counts batch-norm statistics; tf2onnx folds them)."""
    path = Path(path)
    if kind_of(path) == "onnx":

        return fold(read(path), where=str(path)), None  # as compile sees it: shape arithmetic folded

    keras_model = load(path, trust_model=trust_model).keras_model
    return keras_to_onnx(keras_model), int(keras_model.count_params())


def _nodes(model: Any) -> list[tuple[str, str, str]]:
    return [(n.name or n.output[0], n.op_type, n.domain or "") for n in model.graph.node]


def _opset(model: Any, domain: str) -> int:
    for entry in model.opset_import:
        if (entry.domain or "") in ((domain,) if domain else ("", "ai.onnx")):
            return int(entry.version)
    return 0


def onnxruntime_support(model: Any) -> dict[str, str | None]:
    """ONNX op type -> None if ORT's CPU provider has a kernel for it at the model's opset, else why."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    kernels = collections.defaultdict(list)
    for k in ort_c.get_all_opkernel_def():
        if k.provider == "CPUExecutionProvider":
            kernels[(k.op_name, k.domain or "")].append(k.version_range)
    out: dict[str, str | None] = {}
    for _, op, domain in _nodes(model):
        version = _opset(model, domain)
        ranges = kernels.get((op, domain), [])
        # ONNX Runtime turns Constant nodes into initializers when it loads the graph: no kernel needed.
        ok = any(low <= version <= high for low, high in ranges) or (op == "Constant" and not domain)
        out[op] = None if ok else (f"no CPU kernel for opset {version}" if ranges else "no CPU kernel")
    return out


def openvino_support(model: Any, work: Path) -> dict[str, str | None]:
    """ONNX op type -> None if OpenVINO's ONNX front end converts it and the CPU plugin runs it."""
    import onnx
    import openvino as ov
    from openvino.frontend import FrontEndManager

    work.mkdir(parents=True, exist_ok=True)
    path = work / "inspect.onnx"
    onnx.save(model, str(path))
    frontend = FrontEndManager().load_by_framework("onnx")
    converted = frontend.convert_partially(frontend.load(str(path)))
    by_name = {}
    for name, op, _ in _nodes(model):
        by_name[name] = op
    for node in model.graph.node:
        for output in node.output:
            by_name[output] = node.op_type
    out: dict[str, str | None] = {op: None for _, op, _ in _nodes(model)}
    framework = [o for o in converted.get_ops() if "FrameworkNode" in o.get_type_name()]
    for op in framework:
        name = op.get_friendly_name()
        out[by_name.get(name, name)] = "OpenVINO's ONNX front end cannot convert it"
    if not framework:
        supported = ov.Core().query_model(converted, "CPU")
        for op in converted.get_ops():
            name = op.get_friendly_name()
            if name not in supported and op.get_type_name() not in ("Parameter", "Result", "Constant"):
                out[by_name.get(name, op.get_type_name())] = "CPU plugin cannot run it"
    return out


def tflite_support(model: Any, allowed: list[str] | None, c_ops: Any = None) -> dict[str, str | None]:
    """ONNX op type -> None if the lowering covers it and its TFLite builtins are ``allowed``.

    ``c_ops``: the TFLite builtins edgec's generated C implements (``--backend c``), or None.
    """
    out: dict[str, str | None] = {}
    for _, op, domain in _nodes(model):
        if domain not in ("", "ai.onnx") or op not in SUPPORTED_OPS:
            out[op] = "not lowerable to TFLite (not in the ONNX lowering's operator set)"
            continue
        missing = [alts for alts in TFLITE_BUILTINS[op]
                   if allowed is not None and not set(alts) & set(allowed)]
        out[op] = None if not missing else PATTERN_ONLY.get(op, "") + "needs " + \
            ", ".join("/".join(a) for a in missing) + " (not in the target's operators.allowed)"
        if out[op] is None and c_ops is not None:
            gaps = [alts for alts in TFLITE_BUILTINS[op] if not set(alts) & set(c_ops)]
            out[op] = None if not gaps else PATTERN_ONLY.get(op, "") + "needs " + \
                ", ".join("/".join(a) for a in gaps) + " (not supported by the C backend)"
    return out


PATHS = {name: f.onnx_path for name, f in FORMATS.items()}


def _verdicts(model: Any, profile: dict, work: Path) -> tuple[dict[str, str | None], str]:
    """Per-operator verdicts of one target, and the toolchain that gave them."""
    fmt = profile.get("format")
    if fmt == "onnx":
        return onnxruntime_support(model), "onnxruntime CPU kernel registry"
    if fmt == "openvino":
        return openvino_support(model, work), "OpenVINO ONNX front end + CPU plugin query"
    if fmt in ("tflm", "litert", "c"):
        allowed = profile.get("operators", {}).get("allowed") if fmt != "litert" else None
        c_ops = None
        if fmt == "c":

            c_ops = set(OPS)
        return tflite_support(model, allowed, c_ops), "edgec ONNX lowering + operators.allowed" + (
            " + C backend kernels" if fmt == "c" else "")
    raise InputError(f"target '{profile['id']}': format '{fmt}' has no operator check", stage=STAGE)


def inspect(model_path: str | Path, target_ids: list[str] | None, *, work: Path, trust_model: bool = False,
            backend: str | None = None) -> dict[str, Any]:
    """Per target: the model's operators it can run and the ones it cannot, with the reason.

    ``target_ids`` None means every target. Returns ``{"model", "summary", "operators": {op: count},
    "targets": {id: {"format", "path", "checked_by", "supported": [...], "unsupported": {op: reason},
    "ok": bool}}}``; ``summary`` holds the signature, parameters, float bytes and MACs.
    """
    model, keras_params = onnx_model_of(model_path, trust_model=trust_model)
    counts = dict(sorted(collections.Counter(op for _, op, _ in _nodes(model)).items()))
    info = summary(model)
    if keras_params is not None:  # a Keras model: say which graph was counted
        info["keras_params"] = keras_params
        info["note"] = "counted on the ONNX graph tf2onnx made of the Keras model (batch norms folded)"
    result: dict[str, Any] = {"model": str(model_path), "summary": info, "operators": counts, "targets": {}}
    ids = target_ids or [p["id"] for p in targets.listing()]
    for target_id in ids:
        profile = targets.resolve(target_id)
        if backend is not None and profile.get("format") == "tflm":
            profile = targets.with_backend(profile, backend)
        verdicts, by = _verdicts(model, profile, Path(work))
        unsupported = {op: why for op, why in sorted(verdicts.items()) if why}
        result["targets"][target_id] = {
            "format": profile["format"], "path": PATHS[profile["format"]], "checked_by": by,
            "supported": sorted(op for op, why in verdicts.items() if not why),
            "unsupported": unsupported, "ok": not unsupported}
    return result


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]" if shape is not None else "[unknown]"


def _summary_lines(result: dict[str, Any]) -> list[str]:
    info = result.get("summary")
    if not info:
        return []
    macs = f"{info['macs']:,} MACs" + (f" (not counted for {len(info['macs_unknown'])} nodes of unknown shape)"
                                       if info["macs_unknown"] else "")
    keras = f"{info['keras_params']:,} parameters in the Keras model; " if "keras_params" in info else ""
    lines = [f"{keras}{info['params']:,} parameters, {info['float_bytes']:,} B as float "
             f"({info['float_bytes'] / 2**20:.2f} MiB), {macs}"]
    lines += [f"  ({info['note']})"] if info.get("note") else []
    lines += [f"  input {n}: {_shape(s)} {t}" for n, s, t in info["inputs"]]
    lines += [f"  output {n}: {_shape(s)} {t}" for n, s, t in info["outputs"]]
    return lines


def render(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`inspect`'s result: operators x targets, yes / NO, then why and how."""
    ops = list(result["operators"])
    ids = list(result["targets"])
    width = max([len(o) for o in ops] + [8])
    lines = [f"{result['model']}: {sum(result['operators'].values())} nodes, {len(ops)} operator types",
             *_summary_lines(result), "", "operator".ljust(width) + "  count  " + "  ".join(ids)]
    for op in ops:
        cells = ["yes".ljust(len(t)) if op not in result["targets"][t]["unsupported"] else "NO".ljust(len(t))
                 for t in ids]
        lines.append(op.ljust(width) + f"  {result['operators'][op]:5d}  " + "  ".join(cells))
    tw = max([len(t) for t in ids] + [6])
    lines += ["", "how each target runs it:"]
    for t in ids:
        info = result["targets"][t]
        verdict = "runs every operator" if info["ok"] else f"cannot run {len(info['unsupported'])} operator type(s)"
        lines.append(f"  {t.ljust(tw)}  {info['format']}: {info.get('path', '')}; {verdict} "
                     f"(checked by {info['checked_by']})")
    why = []
    for t in ids:  # one line per target and reason, naming every operator it applies to
        by_reason: dict[str, list[str]] = {}
        for op, reason in result["targets"][t]["unsupported"].items():
            by_reason.setdefault(reason, []).append(op)
        why += [f"{t}: {', '.join(ops_)}: {reason}" for reason, ops_ in by_reason.items()]
    if why:
        lines += ["", "why not:", *why]
    return "\n".join(lines)
