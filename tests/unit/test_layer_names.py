"""One tensor-name -> Keras-layer function for the report, the per-layer error and --keep-float."""

from edgec.core.tflite_model import layer_name


def test_plain_layers():
    # Names as TensorFlow 2.21's converter writes them (tests/toolchain/test_nested_layer_names.py makes them).
    assert layer_name("outer/conv1/Relu;outer/conv1/Conv2D") == "conv1"
    assert layer_name("outer/fc1/MatMul1") == "fc1"
    assert layer_name("outer/head/MatMul") == "head"


def test_nested_model_names_the_inner_layer():
    assert layer_name("outer/block/fc_inner/MatMul;outer/block/fc_inner/Relu") == "fc_inner"
    assert layer_name("outer/block/fc_inner/MatMul") == "fc_inner"


def test_names_without_a_layer_path_are_kept():
    assert layer_name("StatefulPartitionedCall:01") == "StatefulPartitionedCall:01"
    assert layer_name("tfl.quantize") == "tfl.quantize"
