"""Which harness a target gets, and the refusals (no TensorFlow needed)."""

import pytest

from edgec.device.harness import generate as harness
from edgec.core import targets
from edgec.core.errors import InputError


def test_each_phone_and_board_profile_names_its_harness():
    kinds = {t: harness.harness_kind(targets.resolve(t))
             for t in ("android-arm64", "raspberry-pi-4", "jetson-orin", "jetson-orin-onnx")}
    assert kinds == {"android-arm64": "android-adb", "raspberry-pi-4": "linux-litert",
                     "jetson-orin": "linux-litert", "jetson-orin-onnx": "onnxruntime"}


def test_microcontroller_target_gets_no_host_harness(tmp_path):
    assert harness.write_harness(tmp_path, {"id": "m", "format": "tflm"}) is None
    assert not (tmp_path / "harness").exists()


def test_unknown_harness_name_is_a_config_error(tmp_path):
    with pytest.raises(InputError, match="unknown device.harness 'ios'") as info:
        harness.write_harness(tmp_path, {"id": "x", "format": "litert", "device": {"harness": "ios"}})
    assert info.value.exit_code == 2


def test_android_harness_without_int8_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no model.tflite"):
        harness.write_harness(tmp_path, targets.resolve("android-arm64"))


def test_generated_scripts_carry_the_profiles_values_and_no_placeholders(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"x")
    folder = harness.write_harness(tmp_path, targets.resolve("jetson-orin"))
    script = (folder / "run_litert.py").read_text()
    assert "@@" not in script and 'threads=6)' in script and "target jetson-orin" in script
