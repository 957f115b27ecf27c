"""Keras 3 -> tf_keras config translation of the graph structure (no TensorFlow needed)."""

from __future__ import annotations

import pytest

from edgec.frontend.keras.keras3_config import _endpoints, _node, _NotRebuildable


def _tensor(layer: str, node: int = 0, index: int = 0) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "dtype": "float32",
                                                        "keras_history": [layer, node, index]}}


def test_single_tensor_call_becomes_one_keras2_entry():
    assert _node({"args": [_tensor("dense", 1, 0)], "kwargs": {}}, "head") == [["dense", 1, 0, {}]]


def test_call_on_a_list_of_tensors_becomes_one_entry_per_tensor_with_kwargs_on_the_first():
    node = {"args": [[_tensor("a"), _tensor("b", 0, 1)]], "kwargs": {"training": False}}
    assert _node(node, "add") == [["a", 0, 0, {"training": False}], ["b", 0, 1, {}]]


def test_keras2_nodes_pass_through_unchanged():
    assert _node([["a", 0, 0, {}]], "add") == [["a", 0, 0, {}]]


@pytest.mark.parametrize("node,reason", [
    ({"args": [_tensor("a"), _tensor("b")], "kwargs": {}}, "2 positional arguments"),
    ({"args": [_tensor("q")], "kwargs": {"value": _tensor("v")}}, "tensors as keyword arguments"),
    ({"args": [3.0], "kwargs": {}}, "other than tensors"),
])
def test_calls_tf_keras_configs_cannot_express_name_the_layer(node, reason):
    with pytest.raises(_NotRebuildable) as caught:
        _node(node, "attention")
    assert caught.value.args[0] == "attention" and reason in caught.value.args[1]


def test_a_single_model_endpoint_becomes_a_list_of_endpoints():
    assert _endpoints(["x", 0, 0]) == [["x", 0, 0]]
    assert _endpoints([["x", 0, 0], ["y", 0, 0]]) == [["x", 0, 0], ["y", 0, 0]]
