"""Bad input and damaged builds across the commands: one line, the right exit code, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, ROOT, assert_refused

pytestmark = pytest.mark.toolchain


def _compile(run_cli, out, *extra, model=DIGITS_MODEL, calibration=DIGITS_CALIBRATION, target="cortex-m4"):
    return run_cli("compile", model, "-t", target, "--calibration", calibration, "-o", out, *extra)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from edgec.pipeline import compile as run

    out = tmp_path_factory.mktemp("build")
    run(DIGITS_MODEL, ["cortex-m4"], calibration=str(DIGITS_CALIBRATION), eval=str(DIGITS_EVAL), out=out)
    return out / "cortex-m4"


def test_output_path_that_is_a_file_is_refused(run_cli, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_refused(_compile(run_cli, tmp_path / "file"), 2, "cannot write the output folder")


def test_a_file_in_place_of_the_target_folder_is_replaced_without_leftovers(run_cli, tmp_path):
    (tmp_path / "cortex-m4").write_text("x")
    code, _, err = _compile(run_cli, tmp_path, "--eval", DIGITS_EVAL)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cortex-m4"]


def test_recipe_that_is_a_folder_is_refused(run_cli, tmp_path):
    assert_refused(_compile(run_cli, tmp_path / "out", "--recipe", tmp_path), 2, "cannot be read")


def _digits_npz(path, images=None, labels=None):
    data = np.load(DIGITS_CALIBRATION)
    np.savez(path, image=data["image"] if images is None else images,
             label=data["label"] if labels is None else labels)
    return path


@pytest.mark.parametrize("mutate,words", [
    (lambda d: _digits_npz(d / "s.npz", labels=np.array(["x"] * 300)), ["labels must be integer class indices"]),
    (lambda d: _digits_npz(d / "s.npz", labels=np.full(300, 12)), ["labels range 12..12", "10 classes"]),
    (lambda d: _digits_npz(d / "s.npz", images=(np.load(DIGITS_CALIBRATION)["image"] * 16).astype(np.uint8)),
     ["dtype uint8 for a float32 input", "preprocessing"]),
])
def test_bad_labels_and_integer_images_are_refused(run_cli, tmp_path, mutate, words):
    assert_refused(_compile(run_cli, tmp_path / "out", calibration=mutate(tmp_path)), 2, *words)
    assert not (tmp_path / "out" / "cortex-m4").exists()


def test_settings_that_cannot_apply_are_refused_up_front(run_cli, tmp_path):
    assert_refused(_compile(run_cli, tmp_path, "--max-accuracy-drop", "-1"), 2, "between 0 and 1")
    assert_refused(_compile(run_cli, tmp_path, "--keep-float", "conv1", "--backend", "c"), 2,
                   "TFLite, ONNX and OpenVINO targets; not on cortex-m4")
    assert_refused(_compile(run_cli, tmp_path, target="mcu-base"), 2, "base profile")
    assert_refused(_compile(run_cli, tmp_path, "--prune", "0.3", "--prune-structure", "2:4"), 2, "2:4")
    assert list(tmp_path.iterdir()) == []


def test_dynamic_shapes_are_refused_naming_the_input(run_cli, tmp_path):
    from edgec.core.tf import keras

    k = keras()
    inp = k.Input((None, 4), name="seq")
    k.Model(inp, k.layers.Dense(2)(inp)).save(tmp_path / "dyn.keras")
    assert_refused(_compile(run_cli, tmp_path / "out", model=tmp_path / "dyn.keras", calibration="random"), 2,
             "'seq' has dynamic shape", "static shapes")


def test_two_input_model_compiles_for_tflite_targets(run_cli, tmp_path):
    from edgec.core.tf import keras

    from edgec.runtimes.litert import predict_litert
    from edgec.runtimes.tflm import predict_tflm
    from edgec.core.tflite_model import parse

    k = keras()
    k.utils.set_random_seed(0)
    # Two inputs of one shape: bound in the wrong order, they would still run, and give other outputs.
    a, b = k.Input((4,), name="a"), k.Input((4,), name="b")
    x = k.layers.Concatenate()([k.layers.Dense(5)(a), k.layers.Dense(5)(b)])
    model = k.Model([a, b], k.layers.Dense(3, activation="softmax")(x))
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "two.npz", a=rng.random((40, 4), dtype=np.float32), b=rng.random((40, 4), dtype=np.float32))
    code, _, err = run_cli("compile", tmp_path / "two.keras", "-t", "cortex-m4", "-t", "raspberry-pi-4",
                           "--calibration", tmp_path / "two.npz", "-o", tmp_path / "out")
    assert code == 0, err
    fresh = {"a": rng.random((16, 4), dtype=np.float32), "b": rng.random((16, 4), dtype=np.float32)}
    expected = model.predict([fresh["a"], fresh["b"]], verbose=0)
    assert np.abs(model.predict([fresh["b"], fresh["a"]], verbose=0) - expected).max() > 0.05  # order matters
    for target, predict in (("cortex-m4", predict_tflm), ("raspberry-pi-4", predict_litert)):
        folder = tmp_path / "out" / target
        tflite = parse((folder / "model.tflite").read_bytes())
        assert [list(tflite.tensors[i].shape) for i in tflite.inputs] == [[1, 4], [1, 4]]
        report = json.loads((folder / "report.json").read_text())["verification"]
        assert report["passed"] and report["samples"] > 0 and report["top1_agreement"] == 1.0, report
        # The artifact, fed by input name, gives the Keras model's outputs within int8 rounding.
        assert np.abs(predict(folder / "model.tflite", fresh)[0] - expected).max() < 0.02, target


def test_verify_refuses_missing_foreign_and_changed_builds(run_cli, build, tmp_path):
    assert_refused(run_cli("verify", tmp_path / "nope"), 2, "does not exist")
    assert_refused(run_cli("verify", tmp_path), 2, "no manifest.json")
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(build, copy)
    (copy / "model.tflite").write_bytes((copy / "model.tflite").read_bytes()[:1000])
    assert_refused(run_cli("verify", copy), 2, "changed since the build")
    (copy / "manifest.json").write_text("{bad")
    assert_refused(run_cli("bench", copy), 2, "damaged manifest")


def test_bench_refuses_a_runtime_of_another_format_and_zero_threads(run_cli, build):
    assert_refused(run_cli("bench", build, "--runtime", "onnxruntime"), 2, "runs in litert, tflm")
    assert_refused(run_cli("bench", build, "--threads", "0"), 2, "threads must be >= 1")


def test_flash_refuses_unknown_boards_and_missing_images(run_cli, build, tmp_path):
    assert_refused(run_cli("flash", build, "--board", "nosuch", "--dry-run"), 2, "unknown board 'nosuch'", "nrf52840")
    assert_refused(run_cli("flash", build, "--board", "nrf52840", "--image", tmp_path / "no.hex", "--dry-run"), 2,
             "does not exist")
    assert_refused(run_cli("flash", build, "--board", "qemu-mps2-an386", "--dry-run"), 2, "--backend c")


def test_nan_in_device_outputs_is_named_as_the_failure(run_cli, tmp_path):
    from edgec.device.outputs import save
    from edgec.pipeline import compile as run

    run(DIGITS_MODEL, ["raspberry-pi-4"], calibration=str(DIGITS_CALIBRATION), eval=str(DIGITS_EVAL), out=tmp_path)
    folder = tmp_path / "raspberry-pi-4"
    inputs = np.load(folder / "harness" / "inputs.npz")["image"]
    outputs = np.full((len(inputs), 10), np.nan, np.float32)
    save(tmp_path / "nan.npz", [outputs], inputs=[inputs], runtime="x", device="y")
    code, _, err = run_cli("verify", folder, "--outputs", tmp_path / "nan.npz")
    assert code == 1 and "NaN or inf" in err


def test_sigterm_removes_the_half_built_folder(tmp_path):
    cmd = [sys.executable, "-m", "edgec", "compile", str(DIGITS_MODEL), "-t", "cortex-m4", "-t", "onnx-cpu",
           "--calibration", str(DIGITS_CALIBRATION), "-o", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.startswith(".") for p in tmp_path.iterdir()):
        time.sleep(0.2)  # wait until a target folder is being built
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert os.listdir(tmp_path) in ([], ["cortex-m4"])  # complete folders only
    for name in os.listdir(tmp_path):
        assert json.loads((tmp_path / name / "report.json").read_text())["target"] == name


def test_max_accuracy_drop_is_refused_for_a_one_value_output(run_cli, tmp_path):
    """Top-1 of a regression output is always class 0: a drop measured on it would always be 0."""
    from edgec.core.tf import keras

    k = keras()
    inp = k.Input((4,), name="x")
    k.Model(inp, k.layers.Dense(1, name="score")(k.layers.Dense(8, activation="relu")(inp))).save(tmp_path / "r.keras")
    assert_refused(_compile(run_cli, tmp_path / "out", "--max-accuracy-drop", "0.01", model=tmp_path / "r.keras",
                            calibration="random"), 2, "one value per sample", "--keep-float")
    assert not (tmp_path / "out").exists()


def test_model_whose_int8_weights_exceed_every_flash_target_is_refused_before_quantizing(run_cli, tmp_path):
    """edgec/quantize/flash_bound.py: one byte per kernel element is a lower bound of the flash an int8
    model needs; over it on every target, the compile stops at once (exit 1, nothing written)."""
    from edgec.core.tf import keras

    k = keras()
    x = k.Input((2048,), name="features")
    model = k.Model(x, k.layers.Dense(10, name="probs")(k.layers.Dense(1024, name="wide")(x)))
    model.save(tmp_path / "wide.keras")  # 2,107,392 kernel bytes: over cortex-m0plus's model flash
    np.savez(tmp_path / "calib.npz", features=np.zeros((8, 2048), np.float32))
    out = tmp_path / "out"
    code, _, err = run_cli("compile", tmp_path / "wide.keras", "-t", "cortex-m0plus",
                           "--calibration", tmp_path / "calib.npz", "-o", out)
    assert code == 1 and "need at least 2107392 B" in err and "refused before quantizing" in err, err
    assert not out.exists() or not any(out.iterdir())


def test_an_operator_tflite_micro_lacks_is_refused_by_name_before_any_tflm_run(run_cli, tmp_path):
    # Keras' built-in GELU becomes TFLite's int8 GELU, which TFLite Micro has no kernel for: the export
    # once reached the slimming check's interpreter first and ended in its allocation traceback.
    from edgec.core.tf import keras

    k = keras()
    model = k.Sequential([k.Input((8,)), k.layers.Dense(16), k.layers.Activation("gelu"), k.layers.Dense(4)])
    model.save(tmp_path / "gelu.h5")
    assert_refused(_compile(run_cli, tmp_path / "out", model=tmp_path / "gelu.h5", calibration="random"), 2,
                   "[export / cortex-m4] operators GELU are not available on this target")
    assert not (tmp_path / "out" / "cortex-m4" / "model.tflite").exists()
