"""MLPerf Tiny reference models compile for cortex-m4 with MLPerf's own int8 weights, in no larger a file.

Our files are smaller: same constant bytes and operators, but edgec drops the bias quantization
parameters and long tensor names that TFLite Micro never reads (edgec/backends/tflm/slim.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgec.core.tflite_model import constant_bytes, parse
from tests.conftest import MLPERF, assert_verdict_follows_agreement, needs_mlperf, resnet8_calibration

pytestmark = [pytest.mark.toolchain, pytest.mark.slow, needs_mlperf]


def _compile(run_cli, model, out, calibration, *, passes=True):
    code, _, err = run_cli("compile", model, "--target", "cortex-m4", "--calibration", calibration, "-o", out)
    report = json.loads((out / "cortex-m4" / "report.json").read_text())
    if passes:
        assert code == 0, err
    else:  # photo crops: see assert_verdict_follows_agreement
        assert_verdict_follows_agreement(code, err, report)
    return report


def _same_weights_as_reference(out, reference):
    ours = parse((out / "cortex-m4" / "model.tflite").read_bytes())
    ref = parse((MLPERF / reference).read_bytes())
    assert ours.op_counts() == ref.op_counts()
    assert constant_bytes(ours) == constant_bytes(ref)
    slim = json.loads((out / "cortex-m4" / "report.json").read_text())["compression"]["slim"]
    assert slim["applied"] and slim["bit_exact_samples"] > 0 and slim["bias_quantization_bytes"] > 0
    assert slim["zero_point_bytes"] > 0
    return len(ours.raw), len(ref.raw)


def test_keyword_spotting_compiles_no_larger_than_mlperf_int8(run_cli, tmp_path):
    report = _compile(run_cli, MLPERF / "kws_ref_model", tmp_path, "random")
    ours, ref = _same_weights_as_reference(tmp_path, "kws_ref_model.tflite")
    assert ours <= ref  # also smaller because the 2021 converter wrote a larger flatbuffer
    assert report["memory"]["arena_measured_host_bytes"] > 16_000  # the ideal peak activation memory


def test_resnet8_compiles_no_larger_than_mlperf_int8(run_cli, tmp_path):
    crops = resnet8_calibration(tmp_path / "crops.npz")
    report = _compile(run_cli, MLPERF / "pretrainedResnet.h5", tmp_path / "out", crops, passes=False)
    ours, ref = _same_weights_as_reference(tmp_path / "out", "pretrainedResnet_quant.tflite")
    assert 0.7 * ref <= ours < ref  # slimming: bias parameters, zero points, names (10-25%)
    assert report["memory"]["arena_measured_host_bytes"] > 49_152
    assert report["verification"]["samples"] == 209


def test_wake_word_compiles_with_its_real_calibration_samples(run_cli, tmp_path):
    data = np.load(MLPERF / "str_ww_calibration_samples.npz")
    path = tmp_path / "ww.npz"
    np.savez(path, input_1=data["specs"].astype(np.float32), label=data["labels"])
    report = _compile(run_cli, MLPERF / "str_ww_ref_model.h5", tmp_path / "out", path)
    ours, ref = _same_weights_as_reference(tmp_path / "out", "str_ww_ref_model.tflite")
    assert 0.7 * ref <= ours < ref  # slimming: bias parameters, zero points, names (10-25%)
    assert report["verification"]["reference_top1"] is not None
