"""The CLI flows of phones and edge boards: outlier fixed by --max-accuracy-drop, device outputs verified,
bench in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, assert_refused
from tests.toolchain.test_layer_error_outlier import _outlier_model

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def outlier_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outlier")
    model = _outlier_model()
    model.save(folder / "outlier.keras")
    data = np.random.default_rng(0).normal(size=(192, 8)).astype(np.float32)
    labels = model.predict(data, verbose=0).argmax(1)  # the float model's answers as labels
    np.savez(folder / "calib.npz", x=data[:64])
    np.savez(folder / "eval.npz", x=data[64:], label=labels[64:])
    return folder


def test_broken_int8_layer_fails_verification_and_is_named(run_cli, outlier_files, tmp_path):
    code, _, err = run_cli("compile", outlier_files / "outlier.keras", "-t", "raspberry-pi-4",
                           "--calibration", outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz",
                           "-o", tmp_path)
    assert code == 1 and "worst int8 layers: mixer" in err and "--max-accuracy-drop" in err
    report = json.loads((tmp_path / "raspberry-pi-4" / "report.json").read_text())
    assert report["layer_error"]["layers"][0]["layer"] == "mixer"
    assert "layer_error" in (tmp_path / "raspberry-pi-4" / "report.html").read_text()


def test_an_output_judged_by_snr_gets_no_top1_search_as_the_hint(run_cli, outlier_files, tmp_path):
    recipe = tmp_path / "regression.toml"
    recipe.write_text('output_kind = "regression"\n')
    code, _, err = run_cli("compile", outlier_files / "outlier.keras", "-t", "raspberry-pi-4",
                           "--calibration", outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz",
                           "--recipe", recipe, "-o", tmp_path / "out")
    assert code == 1 and "SNR" in err and "worst int8 layers: mixer" in err
    assert "try --keep-float mixer" in err and "--max-accuracy-drop" not in err


def test_max_accuracy_drop_keeps_the_worst_layer_in_float_and_passes(run_cli, outlier_files, tmp_path):
    code, _, err = run_cli("compile", outlier_files / "outlier.keras", "-t", "raspberry-pi-4",
                           "--calibration", outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz",
                           "--max-accuracy-drop", "0.02", "-o", tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "raspberry-pi-4" / "report.json").read_text())
    assert report["keep_float"]["steps"][-1]["kept_float"] == ["mixer"] and report["keep_float"]["met"]
    ver = report["verification"]
    assert ver["reference_top1"] - ver["artifact_top1"] <= 0.02


@pytest.fixture(scope="module")
def pi_build(tmp_path_factory):
    from edgec.pipeline import compile as run

    out = tmp_path_factory.mktemp("pi")
    run(DIGITS_MODEL, ["raspberry-pi-4"], calibration=str(DIGITS_CALIBRATION), eval=str(DIGITS_EVAL), out=out)
    return out / "raspberry-pi-4"


def test_harness_outputs_pass_edgec_verify_outputs_and_match_the_build(run_cli, pi_build):
    harness = pi_build / "harness"
    done = subprocess.run([sys.executable, "run_litert.py", "--inputs", "inputs.npz", "--outputs", "outputs.npz",
                           "--runs", "10"], cwd=harness, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    code, out, err = run_cli("verify", pi_build, "--outputs", harness / "outputs.npz")
    assert code == 0, err
    result = json.loads((pi_build / "verify.json").read_text())
    assert result["bit_exact"] is True and result["samples"] == 100
    assert result["artifact_top1"] is not None and result["top1_agreement"] == 1.0


def test_outputs_from_other_inputs_are_refused(run_cli, pi_build, tmp_path):
    from edgec.device.outputs import save

    other = np.zeros((100, 8, 8, 1), np.float32)
    save(tmp_path / "o.npz", [np.zeros((100, 10), np.float32)], inputs=[other], runtime="x", device="y")
    assert_refused(run_cli("verify", pi_build, "--outputs", tmp_path / "o.npz"), 2,
                   "input_sha256 does not match the inputs given: captured on other inputs")


def test_bench_times_artifact_and_reference_in_one_run(run_cli, pi_build):
    code, out, err = run_cli("bench", pi_build, "--runs", "30", "--warmup", "5")
    assert code == 0, err
    bench = json.loads((pi_build / "bench.json").read_text())
    assert bench["runtime"] == "litert" and bench["artifact"]["p50_ms"] > 0 and bench["reference"]["p50_ms"] > 0
    assert bench["speedup"] == pytest.approx(bench["reference"]["p50_ms"] / bench["artifact"]["p50_ms"], rel=1e-3)


def test_broken_int8_tensor_in_an_onnx_build_is_named(run_cli, outlier_files, tmp_path):
    code, _, err = run_cli("compile", outlier_files / "outlier.keras", "-t", "onnx-cpu",
                           "--calibration", outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz",
                           "-o", tmp_path)
    assert code == 1 and "worst int8 tensors:" in err
    report = json.loads((tmp_path / "onnx-cpu" / "report.json").read_text())
    assert report["layer_error"]["tool"] == "onnxruntime.quantization.qdq_loss_debug"
    assert "mixer" in report["layer_error"]["layers"][0]["layer"]


def test_max_accuracy_drop_keeps_the_broken_onnx_node_in_float_and_passes(run_cli, outlier_files, tmp_path):
    code, _, err = run_cli("compile", outlier_files / "outlier.keras", "-t", "onnx-cpu",
                           "--calibration", outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz",
                           "--max-accuracy-drop", "0.02", "-o", tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "onnx-cpu" / "report.json").read_text())
    section = report["keep_float"]
    # onnx-cpu's U8U8 int8 computes the same on every CPU, so the drop does not depend on the host
    # (it did with int8 weights: 0.242 on an AVX2-only AMD EPYC, above 0.3 with VNNI).
    assert report["onnx"]["weight_dtype"] == "uint8" and report["int8_arithmetic"]["host_reproduces"]
    assert section["steps"][0]["drop"] > 0.3 and section["met"]  # plain int8 is broken; the loop fixes it
    assert any("mixer" in n for n in section["steps"][-1]["kept_float"])


def test_keep_float_names_an_onnx_layer_or_refuses(run_cli, outlier_files, tmp_path):
    code, _, err = run_cli("compile", outlier_files / "outlier.keras", "-t", "onnx-cpu", "--calibration",
                           outlier_files / "calib.npz", "--keep-float", "nosuch", "-o", tmp_path)
    assert code == 2 and "'nosuch' matches no node" in err


def test_openvino_accuracy_control_never_ships_an_fp32_model(run_cli, outlier_files, tmp_path):
    """On the 3-layer outlier model NNCF meets the drop only by reverting every MatMul: edgec refuses that."""
    common = ["compile", outlier_files / "outlier.keras", "-t", "intel-cpu", "--calibration",
              outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz"]
    code, _, err = run_cli(*common, "-o", tmp_path / "plain")
    assert code == 1 and "top-1 drop" in err  # NNCF's per-tensor scale rounds the signal channels away
    code, _, err = run_cli(*common, "--max-accuracy-drop", "0.02", "-o", tmp_path / "control")
    assert code == 1 and "reverting every INT8 operation" in err and "--keep-float" in err
    section = json.loads((tmp_path / "control" / "intel-cpu" / "report.json").read_text())["keep_float"]
    assert section["tool"] == "nncf.quantize_with_accuracy_control" and section["int8_operations"] > 0


def test_openvino_keep_float_ignores_the_layer_and_its_readers(run_cli, outlier_files, tmp_path):
    common = ["compile", outlier_files / "outlier.keras", "-t", "intel-cpu", "--calibration",
              outlier_files / "calib.npz", "--eval", outlier_files / "eval.npz"]
    code, _, err = run_cli(*common, "--keep-float", "mixer", "-o", tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "intel-cpu" / "report.json").read_text())
    section = report["keep_float"]
    assert section["tool"] == "nncf.IgnoredScope"
    assert [n.split("/", 1)[1] for n in section["kept_float"]] == ["mixer/MatMul", "head/MatMul"]
    code, _, err = run_cli(*common, "--keep-float", "nosuch", "-o", tmp_path / "x")
    assert code == 2 and "'nosuch' matches no operation of the OpenVINO model" in err
    assert not (tmp_path / "x" / "intel-cpu").exists()


def test_microcontroller_gets_int16_activations_before_float_layers(run_cli, tmp_path):
    """On a core without an FPU, int16x8 (TFLite Micro int16 kernels) beats float layers as the fix."""
    from edgec.core.tflite_model import parse

    model = _outlier_model()
    w, b = model.get_layer("mixer").get_weights()
    w[:, 0] /= 4.0  # a 500x outlier channel: int8 rounds the signal away, int16 keeps it
    model.get_layer("mixer").set_weights([w, b])
    model.save(tmp_path / "outlier.keras")
    data = np.random.default_rng(0).normal(size=(192, 8)).astype(np.float32)
    labels = model.predict(data, verbose=0).argmax(1)
    np.savez(tmp_path / "calib.npz", x=data[:64])
    np.savez(tmp_path / "eval.npz", x=data[64:], label=labels[64:])
    code, _, err = run_cli("compile", tmp_path / "outlier.keras", "-t", "cortex-m0plus", "--calibration",
                           tmp_path / "calib.npz", "--eval", tmp_path / "eval.npz", "--max-accuracy-drop", "0.02",
                           "-o", tmp_path / "out")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "cortex-m0plus" / "report.json").read_text())
    section = report["keep_float"]
    assert section["steps"][0]["drop"] > 0.5 and section["activations"] == "int16" and section["kept_float"] == []
    assert report["verification"]["runtime"] == "tflm" and report["verification"]["passed"]
    shipped = parse((tmp_path / "out" / "cortex-m0plus" / "model.tflite").read_bytes())
    assert {shipped.tensors[i].type for i in shipped.model.subgraphs[0].inputs} == {"INT16"}
    assert "FLOAT32" not in {t.type for t in shipped.tensors}  # nothing left for a missing FPU


OLD_RUNTIME = Path(__file__).resolve().parents[2] / "build" / "tflite-runtime-2.14" / "bin" / "python"


@pytest.mark.skipif(not OLD_RUNTIME.exists(), reason="make test creates the tflite_runtime 2.14 Python")
def test_board_harness_falls_back_to_tflite_runtime_and_its_outputs_verify(run_cli, pi_build, tmp_path):
    """An older board with only tflite_runtime 2.14 (no ai_edge_litert): same harness, same outputs."""
    done = subprocess.run([str(OLD_RUNTIME), "-c", "import ai_edge_litert"], capture_output=True, text=True)
    assert done.returncode != 0  # the fallback really is exercised
    done = subprocess.run([str(OLD_RUNTIME), "run_litert.py", "--inputs", "inputs.npz", "--outputs",
                           str(tmp_path / "old.npz"), "--runs", "5"], cwd=pi_build / "harness",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "tflite_runtime 2.14" in done.stdout
    code, _, err = run_cli("verify", pi_build, "--outputs", tmp_path / "old.npz")
    assert code == 0, err
    result = json.loads((pi_build / "verify.json").read_text())
    assert result["runtime"].startswith("tflite_runtime 2.14") and result["bit_exact"] is True
