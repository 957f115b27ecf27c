"""The device-outputs npz layout: what `edgec verify --outputs` accepts and what it refuses (exit 2)."""

import numpy as np
import pytest

from edgec.device import outputs as device_outputs
from edgec.core.errors import InputError

INPUTS = [np.linspace(0, 1, 3 * 4, dtype=np.float32).reshape(3, 4)]


def _arrays(**override):
    arrays = {"output_0": np.zeros((3, 10), np.float32), "raw_output_0": np.zeros((3, 10), np.int8),
              "input_sha256": np.array(device_outputs.inputs_sha256(INPUTS)), "runtime": np.array("rt 1"),
              "device": np.array("aarch64 test"), "samples": np.array(3), "format_version": np.array(1)}
    arrays.update(override)
    return {k: v for k, v in arrays.items() if v is not None}


def test_valid_file_round_trips_through_save_and_load(tmp_path):
    path = tmp_path / "o.npz"
    outs = [np.arange(30, dtype=np.float32).reshape(3, 10)]
    device_outputs.save(path, outs, inputs=INPUTS, runtime="rt 1", device="host")
    got = device_outputs.load(path, output_shapes=[(10,)], inputs=INPUTS)
    np.testing.assert_array_equal(got.outputs[0], outs[0])
    assert (got.runtime, got.device, got.samples, got.raw_outputs) == ("rt 1", "host", 3, None)


def test_save_is_byte_identical_for_the_same_arrays(tmp_path):
    for name in ("a.npz", "b.npz"):
        device_outputs.save(tmp_path / name, [np.ones((3, 2))], inputs=INPUTS, runtime="r", device="d")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


@pytest.mark.parametrize("override, message", [
    ({"input_sha256": None}, "missing keys: input_sha256"),
    ({"output_0": None, "raw_output_0": None}, "missing keys: output_0"),
    ({"logits": np.zeros(3)}, "unknown keys: logits"),
    ({"output_2": np.zeros((3, 1), np.float32)}, "numbered from output_0 without gaps"),
    ({"output_0": np.zeros((2, 10), np.float32)}, "expected 3 samples first"),
    ({"output_0": np.zeros((3, 10), np.int8)}, "must be float"),
    ({"output_0": np.zeros((3, 12), np.float32), "raw_output_0": np.zeros((3, 12), np.int8)},
     "per-sample shape \\(12,\\), the model gives \\(10,\\)"),
    ({"format_version": np.array(2)}, "format_version 2"),
    ({"input_sha256": np.array("0" * 64)}, "captured on other inputs"),
])
def test_malformed_outputs_file_is_an_input_error(tmp_path, override, message):
    path = tmp_path / "o.npz"
    np.savez(path, **_arrays(**override))
    with pytest.raises(InputError, match=message) as info:
        device_outputs.load(path, output_shapes=[(10,)], inputs=INPUTS)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_missing_or_unreadable_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        device_outputs.load(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable npz"):
        device_outputs.load(tmp_path / "bad.npz")


def test_harness_digest_is_the_same_function():
    import importlib.util
    from pathlib import Path

    import edgec

    spec = importlib.util.spec_from_file_location(
        "harness_io", Path(edgec.__file__).parent / "device" / "harness" / "templates" / "harness_io.py")
    hio = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hio)
    data = [np.random.default_rng(0).random((5, 2, 3)), np.arange(5, dtype=np.int64)]
    assert hio.inputs_sha256(data) == device_outputs.inputs_sha256(data)
