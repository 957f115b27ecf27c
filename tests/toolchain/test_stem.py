"""Float stem (edgec/quantize/stem.py): the convolutions reading the model input left in float on CPU targets.

Real TFLite converter and quantizer, tf2onnx and ONNX Runtime's quantize_static; the speed it buys is
measured by `make bench` (tools/bench_runtimes.py), not here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_refused

pytestmark = pytest.mark.toolchain


def _rgb_model(channels: int = 3):
    """A small RGB classifier: stem conv, a residual block, pooling, dense softmax."""
    from edgec.core.tf import keras, seed_everything

    seed_everything(0)
    K = keras()
    x = K.Input((16, 16, channels), name="image")
    y = K.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x)
    z = K.layers.Conv2D(8, 3, padding="same", activation="relu", name="body")(y)
    y = K.layers.Add(name="residual")([y, z])
    y = K.layers.GlobalAveragePooling2D(name="pool")(y)
    return K.Model(x, K.layers.Dense(4, activation="softmax", name="head")(y))


@pytest.fixture(scope="module")
def rgb_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rgb")
    model = _rgb_model()
    model.save(folder / "rgb.keras")
    data = np.random.default_rng(0).uniform(0, 1, (160, 16, 16, 3)).astype(np.float32)
    np.savez(folder / "calib.npz", image=data[:64])
    np.savez(folder / "eval.npz", image=data[64:])
    return folder


def test_stem_finders_name_the_convolution_reading_the_input():
    from edgec.backends.onnx import export_onnx
    from edgec.quantize import converter as quantize
    from edgec.quantize import stem

    model = _rgb_model()
    tflite = stem.tflite_stem(quantize.float_tflite(model))
    assert len(tflite) == 1 and "stem" in next(iter(tflite)) and list(tflite.values()) == [3]
    onnx_model = export_onnx.keras_to_onnx(model)
    assert onnx_model.graph.node[0].op_type == "Transpose"  # tf2onnx's NHWC->NCHW: followed through
    found = stem.onnx_stem(onnx_model)
    assert list(found.values()) == [3] and "stem" in next(iter(found))


def test_auto_rule_keeps_few_channel_stems_in_float_only():
    from edgec.quantize.stem import choose

    assert choose("auto", {"conv": 3})[0] == ["conv"]
    assert choose("auto", {"conv": 16}) == ([], {"setting": "auto", "layers": ["conv"], "input_channels": [16],
                                                  "chosen": "int8", "rule": choose("auto", {})[1]["rule"]})
    assert choose("float", {"conv": 16})[0] == ["conv"]
    assert choose("int8", {"conv": 3})[0] == []
    assert choose("float", {})[1]["chosen"] == "int8"  # nothing reads the input: nothing to keep


def test_float_stem_tflite_is_int8_everywhere_else_and_deterministic():
    from edgec.quantize import converter as quantize
    from edgec.quantize.stem import tflite_stem
    from edgec.core.tflite_model import parse

    model = _rgb_model()
    calib = {"image": np.random.default_rng(1).uniform(0, 1, (32, 16, 16, 3)).astype(np.float32)}
    layers = list(tflite_stem(quantize.float_tflite(model)))
    first = quantize.int8_tflite(model, calib, io_dtype="float32", float_nodes=layers)
    assert first == quantize.int8_tflite(model, calib, io_dtype="float32", float_nodes=layers)
    parsed = parse(first)
    ops = [op.name for op in parsed.operators]
    assert ops[:2] == ["CONV_2D", "QUANTIZE"], ops
    float_ops = [op for op in parsed.operators
                 if any(parsed.tensors[i].type == "FLOAT32" for i in op.inputs + op.outputs if i >= 0)]
    assert {op.name for op in float_ops} == {"CONV_2D", "QUANTIZE", "DEQUANTIZE"}
    assert [parsed.tensors[op.outputs[0]].name for op in float_ops if op.name == "CONV_2D"] == layers
    body = [op for op in parsed.operators if op.name == "CONV_2D"][1]
    assert parsed.tensors[body.inputs[1]].type == "INT8"  # the rest stays int8


def test_compile_ships_the_float_stem_and_verifies(run_cli, rgb_files, tmp_path):
    import onnx

    code, _, err = run_cli("compile", rgb_files / "rgb.keras", "-t", "onnx-cpu", "-t", "android-arm64",
                           "--stem", "auto", "--calibration", rgb_files / "calib.npz",
                           "--eval", rgb_files / "eval.npz", "-o", tmp_path)
    assert code == 0, err
    for target in ("onnx-cpu", "android-arm64"):
        report = json.loads((tmp_path / target / "report.json").read_text())
        assert report["stem"]["chosen"] == "float" and report["stem"]["input_channels"] == [3], report["stem"]
        assert report["verification"]["passed"]
    graph = onnx.load(str(tmp_path / "onnx-cpu" / "model.onnx")).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    weights = {t.name for t in graph.initializer}
    # The stem reads its float weights directly; the body's weights come through DequantizeLinear.
    assert convs[0].input[1] in weights and convs[1].input[1] not in weights
    assert [s["stem"] for s in report["stages"] if s.get("name") == "quantize"] == ["float"]  # android-arm64


def test_stem_is_refused_where_it_cannot_apply(run_cli, rgb_files, tmp_path):
    common = ["--calibration", rgb_files / "calib.npz", "-o", tmp_path]
    assert_refused(run_cli("compile", rgb_files / "rgb.keras", "-t", "cortex-m4", "--stem", "float", *common),
                   2, "--stem float", "cortex-m4")
    assert_refused(run_cli("compile", rgb_files / "rgb.keras", "-t", "onnx-cpu", "--stem", "auto",
                           "--keep-float", "body", *common), 2, "--keep-float")
    assert not any(tmp_path.iterdir())


def test_float_stem_survives_fusion_and_clustering(run_cli, tmp_path):
    """Compression renames tensors (batch norm folded into the stem): the float stem must still be found."""
    from edgec.core.tf import keras, seed_everything
    from edgec.core.tflite_model import parse

    seed_everything(0)
    K = keras()
    x = K.Input((16, 16, 3), name="image")
    y = K.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    y = K.layers.BatchNormalization(name="stem_bn")(y)
    y = K.layers.ReLU(name="stem_relu")(y)
    y = K.layers.Conv2D(8, 3, padding="same", activation="relu", name="body")(y)
    y = K.layers.GlobalAveragePooling2D()(y)
    K.Model(x, K.layers.Dense(4, activation="softmax", name="head")(y)).save(tmp_path / "bn.keras")
    data = np.random.default_rng(0).uniform(0, 1, (96, 16, 16, 3)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", image=data)
    code, _, err = run_cli("compile", tmp_path / "bn.keras", "-t", "android-arm64", "--stem", "float",
                           "--clusters", "8", "--calibration", tmp_path / "calib.npz", "-o", tmp_path / "out")
    assert code == 0, err
    model = parse((tmp_path / "out" / "android-arm64" / "model.tflite").read_bytes())
    first = model.operators[0]
    assert first.name == "CONV_2D" and model.tensors[first.inputs[1]].type == "FLOAT32"
    report = json.loads((tmp_path / "out" / "android-arm64" / "report.json").read_text())
    assert report["stem"]["chosen"] == "float" and report["stages"][1]["name"] == "fuse"
