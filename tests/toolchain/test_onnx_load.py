"""Safe ONNX loading: external data confined to the model's folder, checks, opset and batch handling."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.core.errors import InputError
from edgec.frontend.onnx import graph
from edgec.frontend.onnx import lower as onnx_lower
from edgec.frontend.onnx import read as load_onnx

pytestmark = pytest.mark.toolchain


def _matmul_model(opset: int = 17, batch="N") -> onnx.ModelProto:
    """x[batch, 4] @ W[4, 3] + b -> y, with W big enough to be stored as external data."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
         helper.make_node("Add", ["h", "b"], ["y"], name="add")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _with_external(tmp_path, location: str) -> str:
    """Save a model whose W lives in external data, then point W's location at ``location``."""
    model = _matmul_model()
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    saved = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for tensor in saved.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(saved, str(folder / "m.onnx"))
    return str(folder / "m.onnx")


def test_external_data_inside_the_folder_loads(tmp_path):
    model = load_onnx.read(_with_external(tmp_path, "weights.bin"))
    read = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    written = {t.name: numpy_helper.to_array(t) for t in _matmul_model().graph.initializer}
    assert sorted(read) == ["W", "b"]
    for name, values in written.items():  # the values themselves, read back from weights.bin
        np.testing.assert_array_equal(read[name], values, err_msg=name)


def test_external_data_path_with_dotdot_is_refused(tmp_path):
    path = _with_external(tmp_path, "../weights.bin")
    (tmp_path / "weights.bin").write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    with pytest.raises(InputError, match=r"external data location '\.\./weights\.bin' contains '\.\.'") as e:
        load_onnx.read(path)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_external_data_absolute_path_is_refused(tmp_path):
    path = _with_external(tmp_path, str(tmp_path / "model" / "weights.bin"))
    with pytest.raises(InputError, match="is an absolute path"):
        load_onnx.read(path)


def test_external_data_symlink_out_of_the_folder_is_refused(tmp_path):
    path = _with_external(tmp_path, "link.bin")
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    os.symlink(outside, tmp_path / "model" / "link.bin")
    with pytest.raises(InputError, match="resolves outside the model's folder"):
        load_onnx.read(path)


def test_missing_external_data_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist in the model's folder"):
        load_onnx.read(_with_external(tmp_path, "nothere.bin"))


def test_truncated_file_is_an_input_error(tmp_path):
    raw = _matmul_model().SerializeToString()
    for cut in (len(raw) // 2, 7):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(raw[:cut])
        with pytest.raises(InputError, match="truncated or corrupt|invalid ONNX model") as e:
            load_onnx.read(path)
        assert "\n" not in str(e.value)


def test_garbage_file_is_an_input_error(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\xff\xfe not a protobuf at all \x00\x01" * 10)
    with pytest.raises(InputError, match="not a readable ONNX model|invalid ONNX model"):
        load_onnx.read(path)


def test_invalid_graph_fails_the_full_check(tmp_path):
    model = _matmul_model()
    model.graph.node[1].input[1] = "missing_tensor"
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match="invalid ONNX model"):
        load_onnx.read(path)


def test_opset_above_the_range_is_refused_naming_the_range(tmp_path):
    path = tmp_path / "future.onnx"
    model = _matmul_model(opset=17)
    model.opset_import[0].version = 99
    path.write_bytes(model.SerializeToString())
    low, high = load_onnx.SUPPORTED_OPSETS
    with pytest.raises(InputError, match=f"opset 99 is outside the supported range {low}\\.\\.{high}"):
        load_onnx.read(path)


def test_old_opset_is_converted_into_the_range(tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(_matmul_model(opset=9), str(path))
    model = load_onnx.read(path)
    assert load_onnx.opset_of(model) == load_onnx.CONVERT_TO_OPSET


def test_dynamic_batch_is_fixed_to_one_and_other_dynamic_dims_are_refused(tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(_matmul_model(batch="N"), str(path))
    model = load_onnx.read(path)
    assert graph.signature(model.graph.input, model) == {"x": ((4,), "float32")}
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    dyn = _matmul_model()
    dyn.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "F"
    onnx.save(dyn, str(tmp_path / "dyn2.onnx"))
    with pytest.raises(InputError, match="dynamic dimension 1"):
        load_onnx.read(tmp_path / "dyn2.onnx")


def test_unsupported_operator_is_refused_naming_node_op_and_list(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
         helper.make_node("Floor", ["r"], ["y"], name="my_floor")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "floor.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(InputError) as e:
        onnx_lower.lower(load_onnx.read(path))
    message = str(e.value)
    assert "'my_floor'" in message and "operator Floor" in message and "Conv, ConvTranspose" in message
    assert e.value.exit_code == 2 and "\n" not in message


def test_missing_model_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_onnx.read(tmp_path / "nope.onnx")
