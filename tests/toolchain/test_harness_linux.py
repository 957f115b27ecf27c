"""The Linux-board harness runs here (ai_edge_litert), and its outputs file is what `verify --outputs` accepts."""

import subprocess
import sys

import numpy as np
import pytest

from edgec.device import outputs as device_outputs
from edgec.device.harness import generate as harness
from edgec.quantize import layer_error
from edgec.core import targets
from edgec.core.errors import InputError

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from edge_models_support import keras_cnn, samples, tflite

    out = tmp_path_factory.mktemp("rpi") / "raspberry-pi-4"
    out.mkdir()
    model = tflite(keras_cnn(), int8=True)
    (out / "model.tflite").write_bytes(model)
    inputs = samples(40, seed=7)
    folder = harness.write_harness(out, targets.resolve("raspberry-pi-4"), inputs={"image": inputs})
    return out, folder, model, inputs


def _run(folder, *args):
    return subprocess.run([sys.executable, str(folder / "run_litert.py"), *args], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def test_linux_harness_outputs_are_accepted_and_match_litert_in_process(build):
    out, folder, model, inputs = build
    done = _run(folder, "--inputs", "inputs.npz", "--outputs", "outputs.npz", "--runs", "20", "--warmup", "2")
    assert done.returncode == 0, done.stderr
    captured = device_outputs.load(folder / "outputs.npz", output_shapes=[(10,)], inputs=[inputs])
    assert captured.samples == 40 and captured.runtime.startswith("ai_edge_litert")
    expected = layer_error.litert_predict(model, [inputs])[0]
    np.testing.assert_array_equal(captured.outputs[0], expected)  # same runtime, same kernels: bit-exact
    assert captured.raw_outputs[0].dtype == np.int8
    assert len(captured.latency_ms) == 20


def test_linux_harness_writes_bench_json_with_percentiles(build):
    import json

    _, folder, _, _ = build
    done = _run(folder, "--runs", "30", "--warmup", "3", "--bench", "b.json", "--threads", "2")
    assert done.returncode == 0, done.stderr
    bench = json.loads((folder / "b.json").read_text())
    a = bench["artifact"]
    assert a["runs"] == 30 and 0 < a["p50_ms"] <= a["p90_ms"] <= a["p99_ms"]
    assert bench["threads"] == 2 and bench["artifact"]["path"] == "model.tflite"


def test_linux_harness_refuses_an_input_set_without_the_model_input(build, tmp_path):
    _, folder, _, _ = build
    np.savez(tmp_path / "bad.npz", audio=np.zeros((2, 3), np.float32), other=np.zeros((2, 3), np.float32))
    done = _run(folder, "--inputs", str(tmp_path / "bad.npz"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "no array for model input 'image'" in done.stderr


def test_harness_inputs_npz_is_byte_identical_across_builds(build, tmp_path):
    out, folder, _, inputs = build
    again = tmp_path / "again"
    again.mkdir()
    (again / "model.tflite").write_bytes((out / "model.tflite").read_bytes())
    second = harness.write_harness(again, targets.resolve("raspberry-pi-4"), inputs={"image": inputs})
    for name in ("inputs.npz", "run_litert.py", "harness_io.py", "README.md"):
        assert (second / name).read_bytes() == (folder / name).read_bytes(), name


def test_outputs_captured_on_other_inputs_are_refused(build, tmp_path):
    _, folder, _, inputs = build
    captured = folder / "outputs.npz"
    if not captured.exists():
        assert _run(folder, "--inputs", "inputs.npz", "--runs", "2").returncode == 0
    with pytest.raises(InputError, match="captured on other inputs"):
        device_outputs.load(captured, inputs=[inputs + 0.5])
    with pytest.raises(InputError, match="per-sample shape"):
        device_outputs.load(captured, output_shapes=[(12,)])
