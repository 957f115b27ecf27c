"""The bundled digits example compiled for cortex-m4: artifacts, report, manifest, determinism."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from edgec.core.tflite_model import parse
from edgec.backends.tflm.export_tflm import buffer_offsets
from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL

pytestmark = pytest.mark.toolchain

ARTIFACTS = ("model.tflite", "model_data.cc", "model_data.h", "op_resolver.h")


def _compile(out, *extra):
    from edgec.cli import main

    return main(["compile", str(DIGITS_MODEL), "--target", "cortex-m4", "--calibration", str(DIGITS_CALIBRATION),
                 "--eval", str(DIGITS_EVAL), "-o", str(out), *extra])


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    assert _compile(out) == 0
    return out / "cortex-m4"


def test_int8_artifact_agrees_with_float_reference_within_one_point(build):
    ver = json.loads((build / "report.json").read_text())["verification"]
    assert ver["runtime"] == "tflm" and ver["samples"] == 500 and ver["passed"]
    assert ver["reference_top1"] - ver["artifact_top1"] <= 0.01
    assert ver["reference_top1"] >= 0.97
    assert ver["top1_agreement"] >= 0.98 and ver["cosine"] >= 0.99
    assert ver["cross_check"]["litert-reference"]["bit_exact"] is True


def test_report_has_the_design_keys_measured_on_the_artifact(build):
    report = json.loads((build / "report.json").read_text())
    assert report["target"] == "cortex-m4" and report["format"] == "tflm"
    assert report["model"]["params"] == 86186 and report["model"]["macs"] > 1_000_000
    size, mem = report["size"], report["memory"]
    assert size["artifact_bytes"] == (build / "model.tflite").stat().st_size == size["flash_bytes"]
    assert size["float_tflite_bytes"] > 3 * size["artifact_bytes"]
    assert 0 < size["gzip_bytes"] < size["artifact_bytes"]
    assert mem["arena_measured_host_bytes"] > 0 and mem["arena_bytes"] > mem["arena_measured_host_bytes"]
    assert mem["flash_budget_bytes"] == 1048576 - 131072
    assert [s["name"] for s in report["stages"]] == ["load", "fuse", "quantize", "export", "verify"]
    assert "passed" in (build / "report.html").read_text()


def test_model_is_int8_with_int8_io_and_per_channel_weights(build):
    model = parse((build / "model.tflite").read_bytes())
    assert [model.tensors[i].type for i in model.inputs + model.outputs] == ["INT8", "INT8"]
    conv = next(op for op in model.operators if op.name == "CONV_2D")
    weights = model.tensors[conv.inputs[1]]
    assert weights.type == "INT8" and len(weights.scales) == weights.shape[0] > 1


def test_tflite_buffers_are_16_byte_aligned_and_c_array_holds_the_same_bytes(build):
    raw = (build / "model.tflite").read_bytes()
    assert all(offset % 16 == 0 for _, offset in buffer_offsets(raw))
    source = (build / "model_data.cc").read_text()
    body = source.split("{", 1)[1].split("}", 1)[0]
    assert bytes(int(v, 16) for v in body.replace(",", " ").split()) == raw
    assert f"g_model_data_len = {len(raw)};" in source


# TFLite Micro's MicroMutableOpResolver methods for the digits CNN's operators, spelled as in
# tensorflow/lite/micro/micro_mutable_op_resolver.h (written out here, not derived by edgec's rule).
TFLM_METHODS = {"CONV_2D": "AddConv2D", "MAX_POOL_2D": "AddMaxPool2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
                "RESHAPE": "AddReshape", "FULLY_CONNECTED": "AddFullyConnected", "SOFTMAX": "AddSoftmax"}


def test_op_resolver_registers_exactly_the_models_operators(build):
    ops = parse((build / "model.tflite").read_bytes()).op_names()
    assert sorted(ops) == sorted(TFLM_METHODS)
    text = (build / "op_resolver.h").read_text()
    assert "MicroMutableOpResolver<kNumOps>" in text and f"kNumOps = {len(ops)};" in text
    registered = re.findall(r"resolver\.(Add\w+)\(\)", text)
    assert sorted(registered) == sorted(TFLM_METHODS[op] for op in ops)


def test_arena_in_header_is_the_reported_reserve(build):
    report = json.loads((build / "report.json").read_text())
    header = (build / "model_data.h").read_text()
    assert f"kTensorArenaSize = {report['memory']['arena_bytes']};" in header


def test_manifest_records_versions_recipe_and_hashes(build):
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["toolchains"]["tensorflow"].startswith("2.21")
    assert manifest["toolchains"]["tflite-micro"] == "0.dev20261023182759"
    recipe = manifest["recipe"]
    assert recipe["model"] == str(DIGITS_MODEL) and recipe["calibration"] == str(DIGITS_CALIBRATION)
    assert recipe["eval"] == str(DIGITS_EVAL) and recipe["target"] == "cortex-m4"
    assert manifest["inputs"]["model"] == hashlib.sha256(DIGITS_MODEL.read_bytes()).hexdigest()
    for name in ARTIFACTS + ("report.json", "intermediate/model_int8.tflite"):
        assert manifest["outputs"][name] == hashlib.sha256((build / name).read_bytes()).hexdigest()


def test_same_inputs_give_byte_identical_artifacts(build, tmp_path):
    assert _compile(tmp_path) == 0
    for name in ARTIFACTS:
        assert (tmp_path / "cortex-m4" / name).read_bytes() == (build / name).read_bytes(), name
    first = json.loads((build / "manifest.json").read_text())["outputs"]
    second = json.loads((tmp_path / "cortex-m4" / "manifest.json").read_text())["outputs"]
    assert {k: first[k] for k in ARTIFACTS} == {k: second[k] for k in ARTIFACTS}


def test_verify_command_reruns_verification_on_the_build(build, run_cli):
    code, out, err = run_cli("verify", build, "--eval", DIGITS_EVAL)
    assert code == 0, err
    result = json.loads((build / "verify.json").read_text())
    report = json.loads((build / "report.json").read_text())["verification"]
    assert result["samples"] == 500 and result["artifact_top1"] == report["artifact_top1"]
