"""INT8 post-training quantization through the TFLite converter (and the float reference .tflite).

Full-integer quantization with per-channel weights, fed by edgec's calibration samples; int8 input and
output when the target asks for it (microcontrollers). An operator the converter cannot quantize is an
error naming the op and, where the converter says it, the layer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Sequence

from edgec.core.calibration import Dataset
from edgec.core.errors import EdgecError, InputError, ToolchainError
from edgec.core.isolate import call
from edgec.core.tf import tensorflow
from edgec.core.tflite_model import layer_name, parse
from edgec.quantize.softmax_scale import raise_tiny_softmax_scales

log = logging.getLogger(__name__)

STAGE = "quantize"
CALIBRATION_BATCH = 1  # the converter calibrates one sample per step


@contextlib.contextmanager
def _captured_stderr():
    """Capture fd 2: the converter reports unquantizable ops from C++, not as Python exceptions."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        box: list[str] = []
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode(errors="replace"))


@contextlib.contextmanager
def quiet_stderr():
    """Keep the converter's C++ chatter off the terminal (it is logged at debug level instead)."""
    with _captured_stderr() as box:
        yield
    log.debug("converter output: %s", "".join(box).strip())


def float_tflite(model) -> bytes:
    """Convert the float Keras model to a float32 ``.tflite`` (the size baseline and reference)."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return _convert(converter, "float32")


def fp16_tflite(model) -> bytes:
    """Float16-weight ``.tflite`` (for GPU delegates, which compute in fp16)."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return _convert(converter, "float16")


def int8_tflite(model, calibration: Dataset, *, io_dtype: str = "int8", per_channel: bool = True,
                float_nodes: Sequence[str] = ()) -> bytes:
    """Full-integer INT8 ``.tflite`` of ``model`` calibrated on ``calibration``.

    ``io_dtype`` is ``"int8"``, ``"uint8"`` or ``"float32"`` (float I/O with quantize/dequantize ops).
    ``float_nodes`` (output tensor names) stay in float, alone: their readers get a QUANTIZE (the
    float stem, :mod:`edgec.quantize.stem`). Layers kept in float with their readers (``--keep-float``,
    ``--max-accuracy-drop``) go through :mod:`edgec.quantize.layer_error` instead.
    """
    if float_nodes:
        result = _int8_with_float_nodes(model, calibration, io_dtype=io_dtype, per_channel=per_channel,
                                        float_nodes=list(float_nodes))
    else:
        result = _full_integer(model, calibration, activations="int8", io_dtype=io_dtype, per_channel=per_channel)
    # The converter may write a softmax input scale that TFLite's int8 kernels abort on.
    return raise_tiny_softmax_scales(result)[0]


def _int8_with_float_nodes(model, calibration, *, io_dtype: str, per_channel: bool, float_nodes: list[str]
                           ) -> bytes:
    # The converter's public API cannot leave single ops in float; its MLIR quantizer can, from a
    # calibrated model (what TFLite's QuantizationDebugger does for its denylists).
    tf = tensorflow()
    converter = _converter(model, calibration, ops=tf.lite.OpsSet.TFLITE_BUILTINS_INT8, per_channel=per_channel)
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True
    calibrated = _convert(converter, "int8 calibration")
    _io_type(io_dtype)  # an unknown io_dtype is refused here, before the worker
    # Bytes in, bytes out: the MLIR quantizer runs in edgec's worker process, where a C++ abort is an error.
    result, error = call(_mlir_quantize, calibrated, io_dtype=io_dtype, per_channel=per_channel,
                         float_nodes=float_nodes, stage=STAGE, what="TFLite's MLIR quantizer")
    if result is None:
        raise ToolchainError(f"TFLite quantizer failed (int8, {len(float_nodes)} layer(s) in float): "
                             f"{_explain(error)}", stage=STAGE)
    check_fully_quantized(result, allowed_float=float_nodes)
    return result


def _mlir_quantize(calibrated: bytes, *, io_dtype: str, per_channel: bool, float_nodes: list[str]
                   ) -> tuple[bytes | None, str]:
    """In the worker: (quantized model, "") or (None, the quantizer's error and its C++ stderr)."""
    from tensorflow.lite.python import convert

    io = _io_type(io_dtype)
    with _captured_stderr() as err:
        try:
            result = convert.mlir_quantize(calibrated, disable_per_channel=not per_channel,
                                           fully_quantize=io_dtype != "float32", input_data_type=io,
                                           output_data_type=io, denylisted_nodes=float_nodes)
        except Exception as e:  # noqa: BLE001 - the quantizer wraps MLIR failures in several exception types
            error = str(e)
        else:
            return bytes(result), ""
    return None, error + "\n" + "".join(err)


def int16x8_tflite(model, calibration: Dataset | dict, *, io_dtype: str = "int8", per_channel: bool = True
                   ) -> bytes:
    """Full-integer ``.tflite`` with int16 activations and int8 weights (TFLite's 16x8 mode).

    The converter's 16x8 mode is whole-model (it cannot mix int8 and int16 layers). An integer
    ``io_dtype`` becomes int16 I/O; ``"float32"`` keeps float I/O. Microcontroller targets run it on
    TFLite Micro's (and CMSIS-NN's) int16 kernels with no float unit needed, at about twice the
    activation memory of int8.
    """
    io = "float32" if io_dtype == "float32" else "int16"
    return _full_integer(model, calibration, activations="int16", io_dtype=io, per_channel=per_channel)


def _converter(model, calibration, *, ops, per_channel: bool):
    """A TFLite converter for integer quantization of ``model`` calibrated on ``calibration``."""
    tf = tensorflow()
    if getattr(calibration, "random", False):
        log.warning("calibrating on random samples: int8 ranges will not match real data")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(calibration, list(model.input_names))
    converter.target_spec.supported_ops = [ops]
    converter._experimental_disable_per_channel = not per_channel
    return converter


def _io_type(io_dtype: str):
    tf = tensorflow()
    dtypes = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}
    if io_dtype not in dtypes:
        raise InputError(f"unknown io_dtype '{io_dtype}' (use int8, uint8 or float32)", stage=STAGE)
    return dtypes[io_dtype]


def _full_integer(model, calibration, *, activations: str, io_dtype: str, per_channel: bool) -> bytes:
    tf = tensorflow()
    ops = {"int8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
           "int16": tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8}
    converter = _converter(model, calibration, ops=ops[activations], per_channel=per_channel)
    converter.inference_input_type = converter.inference_output_type = _io_type(io_dtype)
    result = _convert(converter, "int8" if activations == "int8" else "int16x8")
    check_fully_quantized(result)
    return result


def _representative(calibration, keras_names: list[str] | None = None):
    """The converter's representative dataset: one sample per step, keyed by input name.

    Keyed by name because the converter may order a multi-input model's inputs differently.
    ``calibration`` is an edgec Dataset or a dict of arrays by input name. ``keras_names`` are the
    model's input names, which the converter keys by (see :func:`_converter_keys`).
    """
    if isinstance(calibration, dict):
        names, count = list(calibration), len(next(iter(calibration.values())))
        keys = _converter_keys(names, keras_names)
        return lambda: ({keys[n]: calibration[n][i:i + 1] for n in names} for i in range(count))
    names = list(calibration.inputs)
    keys = _converter_keys(names, keras_names)
    return lambda: ({keys[n]: batch[n] for n in names} for batch in calibration.batches(CALIBRATION_BATCH))


def _converter_keys(names: list[str], keras_names: list[str] | None) -> dict[str, str]:
    """Sample input name -> the Keras model's input name: the same name, or the one at the same position.

    Samples are named after the user's model inputs; a lowered ONNX model's Keras inputs carry
    Keras-safe names in the ONNX graph's order ('gpu_0/data_0' becomes 'gpu_0_data_0', ZFNet-512's).
    """
    if keras_names is None or set(names) <= set(keras_names) or len(names) != len(keras_names):
        return {n: n for n in names}
    return dict(zip(names, keras_names))


def check_fully_quantized(tflite: bytes, allowed_float: Sequence[str] = ()) -> None:
    """Refuse a model in which an operator stayed in float, other than those asked for.

    With only int8 builtins allowed the converter still leaves an op that has no int8 kernel (e.g.
    CONV_3D) in float between DEQUANTIZE and QUANTIZE, silently; microcontroller targets cannot run it.
    ``allowed_float`` names output tensors of operators left in float on purpose; each of them must
    be float (a name the quantizer did not match would silently stay int8).
    """
    model = parse(tflite)
    floats = {model.tensors[op.outputs[0]].name for op in model.operators
              if model.tensors[op.outputs[0]].type == "FLOAT32"}
    if set(allowed_float) - floats:
        raise ToolchainError(f"TFLite quantizer did not keep {sorted(set(allowed_float) - floats)} in float",
                             stage=STAGE)
    for op in model.operators:
        if op.name in ("QUANTIZE", "DEQUANTIZE") or model.tensors[op.outputs[0]].name in allowed_float:
            continue
        tensors = [model.tensors[i] for i in op.inputs + op.outputs if i >= 0]
        if any(t.type == "FLOAT32" for t in tensors):
            layer = layer_name(model.tensors[op.outputs[0]].name)
            raise InputError(f"operator {op.name} (layer '{layer}') has no int8 kernel and would stay in "
                             "float; replace that layer, or keep it in float on a target with float kernels "
                             "(--keep-float)", stage=STAGE)


def _convert(converter, what: str) -> bytes:
    with _captured_stderr() as err:
        try:
            result = converter.convert()
        except EdgecError:  # raised by our representative dataset, inside the converter
            raise
        except Exception as e:  # the converter wraps MLIR failures in several exception types
            message = _explain(str(e) + "\n" + "".join(err))
            raise ToolchainError(f"TFLite converter failed ({what}): {message}", stage=STAGE) from None
    return bytes(result)


def _explain(text: str) -> str:
    """One line from the converter's output: the op and location that could not be quantized."""
    for pattern in (r"'(tfl\.[\w.]+)' op[^\n]*", r"error: ([^\n]+)", r"ConverterError: ([^\n]+)"):
        m = re.search(pattern, text)
        if m:
            loc = re.search(r'loc\((?:fused\[)?"([^"]+)"', text)
            where = f" at layer '{loc.group(1)}'" if loc else ""
            return " ".join(m.group(0).split())[:300] + where
    return " ".join(text.split())[-300:]
