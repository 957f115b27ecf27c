"""End to end: `edgec compile` for raspberry-pi-4, its Linux harness run here, outputs checked against the build."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgec import pipeline
from edgec.device import outputs as device_outputs
from edgec.device.harness import generate as harness
from edgec.quantize import layer_error
from edgec.core import targets
from edgec.core.resources import data_dir, example_path

pytestmark = pytest.mark.toolchain


def test_linux_harness_outputs_reproduce_the_builds_own_verification(tmp_path):
    digits = data_dir("calibration") / "digits"
    reports = pipeline.compile(example_path("digits_cnn.keras"), ["raspberry-pi-4"],
                               calibration=str(digits / "calibration.npz"), eval=str(digits / "eval.npz"),
                               out=tmp_path)
    out = tmp_path / "raspberry-pi-4"
    evaluation = np.load(digits / "eval.npz")
    images, labels = evaluation["image"], evaluation["label"]
    folder = harness.write_harness(out, targets.resolve("raspberry-pi-4"), inputs={"image": images})
    done = subprocess.run([sys.executable, str(folder / "run_litert.py"), "--inputs", "inputs.npz",
                           "--outputs", "outputs.npz", "--runs", "20"], cwd=folder, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    captured = device_outputs.load(folder / "outputs.npz", output_shapes=[(10,)], inputs=[images])
    verification = reports["raspberry-pi-4"]["verification"]
    assert verification["samples"] == captured.samples == len(images)
    top1 = float(np.mean(captured.outputs[0].argmax(1) == labels))
    assert top1 == pytest.approx(verification["artifact_top1"], abs=1e-9)
    in_process = layer_error.litert_predict((out / "model.tflite").read_bytes(), [images])[0]
    np.testing.assert_allclose(captured.outputs[0], in_process, rtol=0, atol=1e-6)
    bench = json.loads((folder / "bench.json").read_text())
    assert bench["artifact"]["path"] == "model.tflite" and bench["threads"] == 4  # the profile's threads
