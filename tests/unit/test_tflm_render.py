"""TFLite Micro source rendering, resolver names, arena margin and budget messages (no TensorFlow)."""

from __future__ import annotations

import pytest

from edgec.core import targets
from edgec.core.errors import GateError
from edgec.backends.tflm.export_tflm import arena_reserve, check_budget, render_model_data, render_op_resolver, resolver_method


@pytest.mark.parametrize("op,method", [
    ("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"), ("FULLY_CONNECTED", "AddFullyConnected"),
    ("MAX_POOL_2D", "AddMaxPool2D"), ("SOFTMAX", "AddSoftmax"), ("HARD_SWISH", "AddHardSwish"),
    ("L2_NORMALIZATION", "AddL2Normalization"), ("BATCH_MATMUL", "AddBatchMatMul"), ("PADV2", "AddPadV2"),
    ("RESIZE_NEAREST_NEIGHBOR", "AddResizeNearestNeighbor"), ("RELU6", "AddRelu6"), ("SPLIT_V", "AddSplitV"),
])
def test_resolver_method_names_match_micro_mutable_op_resolver(op, method):
    assert resolver_method(op) == method


def test_op_resolver_registers_exactly_the_given_operators():
    text = render_op_resolver(["CONV_2D", "SOFTMAX"])
    assert "MicroMutableOpResolver<kNumOps>" in text and "constexpr int kNumOps = 2;" in text
    calls = [line.strip() for line in text.splitlines() if "resolver.Add" in line]
    assert calls == ["TF_LITE_ENSURE_STATUS(resolver.AddConv2D());", "TF_LITE_ENSURE_STATUS(resolver.AddSoftmax());"]


def test_model_data_is_an_aligned_array_with_length_and_arena():
    header, source = render_model_data(bytes(range(30)), arena_bytes=4096, arena_note="test")
    assert "constexpr size_t kTensorArenaSize = 4096;" in header
    assert "alignas(16) const unsigned char g_model_data[]" in source
    assert "g_model_data_len = 30;" in source
    values = [int(v, 16) for v in source.split("{", 1)[1].split("}", 1)[0].replace(",", " ").split()]
    assert values == list(range(30))


def test_arena_reserve_adds_the_stated_margin_and_aligns():
    profile = {"memory": {"arena_margin_fraction": 0.1, "arena_margin_bytes": 1024}}
    reserve, note = arena_reserve(10000, profile)
    assert reserve == 12032 and reserve % 16 == 0
    assert "10000 B measured" in note and "10%" in note


def test_over_budget_says_by_how_much_and_what_to_try():
    profile = targets.resolve("cortex-m4")
    flash, _ = targets.model_budget(profile)
    with pytest.raises(GateError) as e:
        check_budget(flash_bytes=flash + 1000, ram_bytes=10, profile=profile)
    message = str(e.value)
    assert "1000 B over" in message and "--prune" in message and "bigger target" in message
    assert e.value.exit_code == 1
