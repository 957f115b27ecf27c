"""ONNX models through `edgec compile` for intel-cpu, onnx-cpu and cortex-m4: one calibration set,
verified in OpenVINO, ONNX Runtime and TFLite Micro."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgec.core.tflite_model import parse as parse_tflite
from tests.conftest import MLPERF, assert_verdict_follows_agreement, needs_mlperf, resnet8_calibration
from tests.toolchain.test_onnx_lower import _cnn_nodes, _value

pytestmark = pytest.mark.toolchain

TARGETS = ["intel-cpu", "onnx-cpu", "cortex-m4"]


def _compile_all(run_cli, model, calibration, out):
    args = ["compile", model, "--calibration", calibration, "-o", out]
    for t in TARGETS:
        args += ["-t", t]
    code, _, err = run_cli(*args)
    assert code == 0, err
    reports = {t: json.loads((out / t / "report.json").read_text()) for t in TARGETS}
    assert {t: r["verification"]["runtime"] for t, r in reports.items()} == {
        "intel-cpu": "openvino", "onnx-cpu": "onnxruntime", "cortex-m4": "tflm"}
    assert all(r["verification"]["passed"] for r in reports.values())
    return reports


def test_onnx_helper_cnn_compiles_and_verifies_for_every_runtime(run_cli, tmp_path):
    nodes, inits = _cnn_nodes()
    # The random head gives a near-flat softmax (top-2 margins down to 0.001) whose top-1 flips under
    # any int8 rounding (onnx-cpu's U8U8: 5 of 48 samples at cosine 0.99999): a 10x head separates them.
    inits = [numpy_helper.from_array(numpy_helper.to_array(t) * 10, t.name) if t.name == "wm" else t for t in inits]
    graph = helper.make_graph(nodes, "cnn", [_value("x", 1, 3, 12, 12)], [_value("y", 1, 5)], inits)
    path = tmp_path / "cnn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).uniform(0, 1, (48, 3, 12, 12)).astype(np.float32))
    reports = _compile_all(run_cli, path, tmp_path / "calib.npz", tmp_path / "out")
    notes = reports["cortex-m4"]["model"]["notes"]
    assert any("matches ONNX Runtime" in n for n in notes)
    # Batch norm was folded into the convolution by onnxslim at load, before the lowering, so neither
    # the ONNX artifact (the model's own graph, not tf2onnx's) nor the Keras model has one left.
    assert any("folded by onnxslim" in n for n in notes)
    assert "BatchNormalization" not in reports["onnx-cpu"]["onnx"]["fusion"]["after"]
    assert reports["onnx-cpu"]["onnx"]["fusion"]["source"].startswith("the model's own ONNX graph")
    assert not any("bn" in str(f) for f in reports["cortex-m4"]["stages"][1]["fusions"])


def _tf2onnx(path, out):
    from edgec.backends.onnx.export_onnx import keras_to_onnx
    from edgec.frontend.load import load

    model = keras_to_onnx(load(path).keras_model)
    onnx.save(model, str(out))
    return model


@needs_mlperf
@pytest.mark.slow
def test_mlperf_kws_via_tf2onnx_compiles_and_verifies_for_every_runtime(run_cli, tmp_path):
    _tf2onnx(MLPERF / "kws_ref_model", tmp_path / "kws.onnx")
    reports = _compile_all(run_cli, tmp_path / "kws.onnx", "random", tmp_path / "out")
    assert all(r["verification"]["accuracy_note"] for r in reports.values())  # random data: fidelity only


@needs_mlperf
@pytest.mark.slow
def test_mlperf_resnet8_via_tf2onnx_compiles_and_verifies_for_every_runtime(run_cli, tmp_path):
    """ResNet-8 as ONNX, calibrated on natural-photo crops, for OpenVINO, ONNX Runtime and TFLite Micro.

    Measured with these 1,200 crops (835 stable, 209 held out): agreement with the float model
    OpenVINO 0.995 (0.79 with NNCF's default ranges and fast bias correction), ONNX Runtime 0.981
    (U8U8; 0.962 with the int8 weights that saturate on AVX2), TFLite Micro 0.952. On a host without
    VNNI (forced here with ONEDNN_MAX_CPU_ISA=AVX2) the VNNI IR gives 0.689 / cosine 0.752, so edgec
    verifies its 7-bit twin instead: 0.967 / 0.995.
    """
    model = _tf2onnx(MLPERF / "pretrainedResnet.h5", tmp_path / "resnet8.onnx")
    crops = np.load(resnet8_calibration(tmp_path / "crops.npz"))["input_1"]
    np.savez(tmp_path / "calib.npz", **{model.graph.input[0].name: crops})
    code, _, err = run_cli("compile", tmp_path / "resnet8.onnx", *[a for t in TARGETS for a in ("-t", t)],
                           "--calibration", tmp_path / "calib.npz", "-o", tmp_path / "out")
    reports = {t: json.loads((tmp_path / "out" / t / "report.json").read_text()) for t in TARGETS}
    for target, report in reports.items():  # photo crops: see assert_verdict_follows_agreement
        assert report["verification"]["samples"] == 209, target
        assert_verdict_follows_agreement(0 if report["verification"]["passed"] else 1, err, report)
    assert code == (0 if all(r["verification"]["passed"] for r in reports.values()) else 1), err
    assert any("matches ONNX Runtime" in n for n in reports["cortex-m4"]["model"]["notes"])
    assert reports["intel-cpu"]["openvino"]["overflow_fix"] == "disable"
    assert reports["intel-cpu"]["openvino"]["activation_range_estimator"] == "MINMAX"
    assert reports["intel-cpu"]["openvino"]["bias_correction"] == "full"  # ResNet-8: 10 weighted layers
    arithmetic = reports["intel-cpu"]["int8_arithmetic"]
    assert arithmetic["target_isa"] == "avx512_vnni"
    twin = "intermediate/host_twin/model.xml"  # a host without VNNI verifies the 7-bit twin
    assert arithmetic["verified"] == ("model.xml" if arithmetic["host_reproduces"] else twin)
    assert reports["onnx-cpu"]["onnx"]["weight_dtype"] == "uint8"  # U8U8: the same integers on every CPU


@needs_mlperf
@pytest.mark.slow
def test_resnet8_openvino_accuracy_control_reverts_a_layer_and_keeps_the_rest_int8(run_cli, tmp_path):
    """nncf.quantize_with_accuracy_control on a real model: the drop is met with most operations in INT8."""
    calibration = resnet8_calibration(tmp_path / "crops.npz")
    code, _, err = run_cli("compile", MLPERF / "pretrainedResnet.h5", "-t", "intel-cpu", "--calibration",
                           calibration, "--max-accuracy-drop", "0.001", "-o", tmp_path / "out")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "intel-cpu" / "report.json").read_text())
    section = report["keep_float"]
    assert section["met"] and section["steps"][0]["drop"] > 0.001 >= section["steps"][-1]["drop"], section
    assert 1 <= len(section["steps"][-1]["kept_float"]) <= 3 and section["int8_operations"] >= 10, section
    assert report["openvino"]["quantizer"] == "nncf.quantize_with_accuracy_control"


def _lrn_cnn(tmp_path, beta: float) -> None:
    """conv -> relu -> LRN(size 5) -> 1x1 conv as lrn.onnx, with cal.npy and eval.npy beside it."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    # ZFNet-512's input name, 'gpu_0/data_0', is no Keras name: the lowered model's input is 'gpu_0_data_0'.
    nodes = [n("Conv", ["gpu_0/data_0", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
             n("Relu", ["c1"], ["r1"], name="relu1"),
             # alpha 1 (AlexNet's 1e-4 is for 0..255 pixels): bias + alpha/size * sum from 1 to 6.1 here.
             n("LRN", ["r1"], ["l1"], name="lrn5", size=5, alpha=1.0, beta=beta, bias=1.0),
             n("Conv", ["l1", "w2"], ["y"], kernel_shape=[1, 1], name="conv2")]
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "b1"),
             numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) * 0.5).astype(np.float32), "w2")]
    graph = helper.make_graph(nodes, "lrn", [_value("gpu_0/data_0", 1, 3, 16, 16)], [_value("y", 1, 4, 16, 16)],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "lrn.onnx"))
    np.save(tmp_path / "cal.npy", rng.uniform(0, 1, (48, 3, 16, 16)).astype(np.float32))
    np.save(tmp_path / "eval.npy", rng.uniform(0, 1, (16, 3, 16, 16)).astype(np.float32))


def test_lrn_model_compiles_to_int8_for_litert_and_tflite_micro(run_cli, tmp_path):
    """AlexNet's conv -> relu -> LRN as int8 TFLite: MUL, a window CONV_2D and RSQRT, no float op.

    TFLite's LOCAL_RESPONSE_NORMALIZATION is float only and TFLite Micro has no kernel for it; the
    lowering's decomposition runs in int8 in both runtimes (measured: SNR 35.0 dB to the float model,
    LiteRT and TFLite Micro alike).
    """
    _lrn_cnn(tmp_path, beta=0.75)
    targets = {"android-arm64": "litert", "cortex-m7": "tflm"}
    code, _, err = run_cli("compile", tmp_path / "lrn.onnx", *[a for t in targets for a in ("-t", t)],
                           "--calibration", tmp_path / "cal.npy", "--eval", tmp_path / "eval.npy",
                           "-o", tmp_path / "out")
    assert code == 0, err
    for target, runtime in targets.items():
        report = json.loads((tmp_path / "out" / target / "report.json").read_text())
        verification = report["verification"]
        assert verification["runtime"] == runtime and verification["passed"], verification
        assert verification["output_kind"] == "regression" and verification["snr_db"] >= 30, verification
        model = parse_tflite((tmp_path / "out" / target / "model.tflite").read_bytes())
        ops = [(op.name, model.tensors[op.outputs[0]].type) for op in model.operators
               if op.name not in ("QUANTIZE", "DEQUANTIZE")]
        assert {name for name, _ in ops} == {"TRANSPOSE", "CONV_2D", "MUL", "RSQRT"}, ops
        assert {dtype for _, dtype in ops} == {"INT8"}, ops
    # The conv1 + relu1 fusion rebuilt the lowered model from its config, window convolution included.
    fuse = next(s for s in report["stages"] if s["name"] == "fuse")
    assert fuse["fusions"] == [{"activation": "relu", "into": "conv1", "kind": "activation", "removed": "relu1"}]


def test_lrn_with_beta_outside_quarters_runs_on_litert_and_is_refused_on_tflite_micro(run_cli, tmp_path):
    """beta 0.6 needs LOG and EXP: int8 in LiteRT (measured SNR 35.6 dB). LOG is not in cortex-m7's
    operators.allowed (and TFLite Micro's EXP is float only: it failed to prepare), so cortex-m7 refuses
    before TFLite Micro runs the model (it used to end in a traceback from slimming)."""
    _lrn_cnn(tmp_path, beta=0.6)
    common = ["--calibration", tmp_path / "cal.npy", "--eval", tmp_path / "eval.npy"]
    code, _, err = run_cli("compile", tmp_path / "lrn.onnx", "-t", "android-arm64", *common, "-o", tmp_path / "out")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "android-arm64" / "report.json").read_text())
    assert report["verification"]["passed"] and report["verification"]["snr_db"] >= 30, report["verification"]
    ops = {op.name for op in parse_tflite((tmp_path / "out" / "android-arm64" / "model.tflite").read_bytes()).operators}
    assert {"LOG", "EXP"} <= ops, ops
    code, _, err = run_cli("compile", tmp_path / "lrn.onnx", "-t", "cortex-m7", *common, "-o", tmp_path / "out_m7")
    assert code == 2 and "operators LOG are not available on this target" in err, err
    assert "Traceback" not in err and not (tmp_path / "out_m7" / "cortex-m7").exists()
