"""`edgec compile --layer-error` and `--calibration-method`, through the command line, on the digits example."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import DIGITS_CALIBRATION, DIGITS_MODEL

pytestmark = pytest.mark.toolchain

# OpenVINO reads the setting through the same function as ONNX Runtime (export_onnx.calibration_method);
# intel-cpu is left out to keep the two compiles short.
TARGETS = ("raspberry-pi-4", "onnx-cpu")


def _compile(run_cli, out, *extra):
    targets = [a for t in TARGETS for a in ("-t", t)]
    code, _, err = run_cli("compile", DIGITS_MODEL, *targets, "--calibration", DIGITS_CALIBRATION, "-o", out, *extra)
    assert code == 0, err
    return {t: json.loads((out / t / "report.json").read_text()) for t in TARGETS}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The same compile twice: with both options, and without them."""
    from edgec.cli import main

    def run_cli(*argv):
        return main([str(a) for a in argv]), "", "see the output above"

    asked = tmp_path_factory.mktemp("asked")
    plain = tmp_path_factory.mktemp("plain")
    return (asked, _compile(run_cli, asked, "--layer-error", "--calibration-method", "percentile"),
            plain, _compile(run_cli, plain))


def test_layer_error_is_reported_for_a_passing_build_only_when_asked(builds):
    _, asked, _, plain = builds
    for target, tool in (("raspberry-pi-4", "tf.lite.experimental.QuantizationDebugger"),
                         ("onnx-cpu", "onnxruntime.quantization.qdq_loss_debug")):
        assert asked[target]["verification"]["passed"], asked[target]["verification"]
        section = asked[target]["layer_error"]
        assert section["tool"] == tool and len(section["layers"]) >= 3, section
        assert "layer_error" not in plain[target]
    # The TFLite debugger names the Keras layers of the digits CNN.
    assert {x["layer"] for x in asked["raspberry-pi-4"]["layer_error"]["layers"]} & {"conv1", "conv2", "fc1"}


def _activation_scales(path) -> dict[str, float]:
    """The scale of every QuantizeLinear (activations; the weights are stored already quantized)."""
    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scales = {n.input[1]: float(values[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert scales, "no QuantizeLinear in the artifact"
    return scales


def test_calibration_method_reaches_onnx_runtime(builds):
    asked_dir, asked, plain_dir, plain = builds
    assert asked["onnx-cpu"]["onnx"]["calibration_method"] == "percentile"
    assert plain["onnx-cpu"]["onnx"]["calibration_method"] == "minmax"
    # And the ranges themselves changed.
    asked_scales = _activation_scales(asked_dir / "onnx-cpu" / "model.onnx")
    plain_scales = _activation_scales(plain_dir / "onnx-cpu" / "model.onnx")
    assert asked_scales.keys() == plain_scales.keys() and asked_scales != plain_scales
