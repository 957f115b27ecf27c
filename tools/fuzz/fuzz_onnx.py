"""Fuzz ONNX loading and checks (edgec.frontend.onnx.read.read): parse, external data, checker, opset, batch, shapes."""

from __future__ import annotations

from harness import MAX_INPUT, expect_refusal, run, scratch_file


def test_one_input(data: bytes) -> None:
    from edgec.frontend.onnx import read as load_onnx

    if len(data) <= MAX_INPUT:
        expect_refusal(load_onnx.read, scratch_file("m.onnx", data))


if __name__ == "__main__":
    run(test_one_input, ["edgec.frontend.onnx.read"])
