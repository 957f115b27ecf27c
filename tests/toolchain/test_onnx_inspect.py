"""`edgec inspect`: per target, which operators of a model run, judged by each target's toolchain."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec import inspect as inspect_ops
from tests.conftest import DIGITS_MODEL, assert_refused

pytestmark = pytest.mark.toolchain


def _model(tmp_path, extra_op: str = "Erf", domain: str = ""):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node(extra_op, ["r"], ["y"], name="odd", domain=domain)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    imports = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=imports), str(path))
    return path


def test_sign_runs_in_onnx_runtime_and_openvino_but_not_on_a_microcontroller(tmp_path):
    result = inspect_ops.inspect(_model(tmp_path, "Sign"), ["onnx-cpu", "intel-cpu", "cortex-m4"], work=tmp_path / "w")
    assert result["operators"] == {"Conv": 1, "Relu": 1, "Sign": 1}
    assert result["targets"]["onnx-cpu"]["ok"] and result["targets"]["intel-cpu"]["ok"]
    m4 = result["targets"]["cortex-m4"]
    assert m4["supported"] == ["Conv", "Relu"] and not m4["ok"]
    assert "not lowerable to TFLite" in m4["unsupported"]["Sign"]
    table = inspect_ops.render(result)
    assert "Sign" in table and "NO" in table and "cortex-m4: Sign:" in table


def test_erf_names_its_gelu_pattern_and_the_builtins_it_needs(tmp_path):
    # GELU is lowered to MUL, ADD, MAXIMUM/MINIMUM and LOGISTIC (TFLite Micro has no GELU kernel).
    model = onnx.load(str(_model(tmp_path)))
    verdicts = inspect_ops.tflite_support(model, ["CONV_2D", "RELU", "MUL", "ADD", "MAXIMUM", "MINIMUM"])
    assert "lowered only inside GELU" in verdicts["Erf"] and "LOGISTIC" in verdicts["Erf"]
    allowed = ["CONV_2D", "RELU", "MUL", "ADD", "MAXIMUM", "MINIMUM", "LOGISTIC"]
    assert inspect_ops.tflite_support(model, allowed)["Erf"] is None


def test_custom_domain_operator_is_unsupported_everywhere(tmp_path):
    result = inspect_ops.inspect(_model(tmp_path, "Mystery", "com.example"), ["onnx-cpu", "intel-cpu"],
                                 work=tmp_path / "w")
    for target in ("onnx-cpu", "intel-cpu"):
        assert list(result["targets"][target]["unsupported"]) == ["Mystery"], result["targets"][target]
        assert result["targets"][target]["supported"] == ["Conv", "Relu"]


def test_tflite_builtins_missing_from_the_profile_are_named(tmp_path):
    model = onnx.load(str(_model(tmp_path, "Sigmoid")))
    verdicts = inspect_ops.tflite_support(model, ["CONV_2D", "RELU"])
    assert verdicts["Conv"] is None and verdicts["Relu"] is None
    assert "LOGISTIC" in verdicts["Sigmoid"] and "operators.allowed" in verdicts["Sigmoid"]


def test_inspect_command_answers_for_a_model_the_lowering_cannot_take(run_cli, tmp_path):
    # `edgec inspect` once lowered every ONNX model first, and so refused exactly the models whose
    # unsupported operators it is there to name.
    code, out, err = run_cli("inspect", _model(tmp_path, "Sign"), "-t", "onnx-cpu", "-t", "cortex-m4")
    assert code == 0, err
    assert "108 parameters" in out and "input x: [1, 3, 6, 6] float32" in out
    assert re.search(r"^Sign +1 +yes +NO *$", out, re.M) and re.search(r"^Conv +1 +yes +yes *$", out, re.M), out
    assert "cortex-m4: Sign: not lowerable to TFLite" in out


def test_inspect_command_on_the_keras_example_and_an_unknown_target(run_cli):
    code, out, err = run_cli("inspect", DIGITS_MODEL, "-t", "cortex-m0plus")
    assert code == 0, err
    assert "86,186 parameters in the Keras model" in out and "input image: [1, 8, 8, 1] float32" in out
    assert re.search(r"^Conv +3 +yes *$", out, re.M) and "NO" not in out, out
    assert_refused(run_cli("inspect", DIGITS_MODEL, "-t", "cortex-m9"), 2, "unknown target 'cortex-m9'")


LIGHT_ZOO = sorted((Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("*.onnx"))


def test_model_facts_are_read_from_the_graph(tmp_path):
    from edgec.frontend.onnx.summary import summary

    info = summary(onnx.load(str(_model(tmp_path))))
    assert info["params"] == 4 * 3 * 3 * 3 and info["float_bytes"] == 4 * 108
    assert info["macs"] == (4 * 6 * 6) * (3 * 3 * 3) and not info["macs_unknown"]
    assert info["inputs"] == [("x", (1, 3, 6, 6), "float32")] and info["outputs"] == [("y", (1, 4, 6, 6), "float32")]


def test_inspect_answers_for_a_model_that_cannot_be_lowered(run_cli, tmp_path):
    code, out, err = run_cli("inspect", _model(tmp_path, "Hardmax"), "-t", "cortex-m4", "-t", "onnx-cpu")
    assert code == 0, err
    assert re.search(r"^Hardmax\s+1\s+NO\s+yes\s*$", out, re.M), out
    assert "cortex-m4: Hardmax: not lowerable to TFLite (not in the ONNX lowering's operator set)" in out
    assert "onnx-cpu   onnx: native ONNX, no lowering; runs every operator" in out
    assert "108 parameters, 432 B as float" in out and "3,888 MACs" in out


def test_c_backend_names_the_kernels_it_lacks(tmp_path):
    result = inspect_ops.inspect(_model(tmp_path, "Tanh"), ["cortex-m4"], work=tmp_path / "w", backend="c")
    assert result["targets"]["cortex-m4"]["format"] == "c" and result["targets"]["cortex-m4"]["ok"]
    verdicts = inspect_ops.tflite_support(onnx.load(str(_model(tmp_path, "Sigmoid"))), None, {"CONV_2D", "RELU"})
    assert "not supported by the C backend" in verdicts["Sigmoid"] and verdicts["Conv"] is None


def test_unreadable_model_is_refused_with_exit_2(run_cli, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    assert_refused(run_cli("inspect", bad, "-t", "onnx-cpu"), 2, "not a readable ONNX model")


@pytest.mark.parametrize("path", LIGHT_ZOO, ids=lambda p: p.stem)
def test_every_light_zoo_model_gets_its_table(run_cli, path):
    code, out, err = run_cli("inspect", path, "-t", "cortex-m4", "-t", "onnx-cpu", "-t", "intel-cpu")
    assert code == 0, err
    assert re.search(r"^[\d,]+ parameters, [\d,]+ B as float .* [\d,]+ MACs", out, re.M), out
    assert re.search(r"^Conv\s+\d+\s+yes\s+yes\s+yes", out, re.M), out
    assert "how each target runs it:" in out
