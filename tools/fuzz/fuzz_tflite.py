"""Fuzz ``.tflite`` parsing (edgec.core.tflite_model): parse, then the statistics reports compute from it."""

from __future__ import annotations

from harness import MAX_INPUT, expect_refusal, run


def parse_and_measure(data: bytes) -> None:
    from edgec.core import tflite_model

    model = tflite_model.parse(data)
    tflite_model.constant_bytes(model)
    tflite_model.macs(model)
    model.op_counts()


def test_one_input(data: bytes) -> None:
    if len(data) <= MAX_INPUT:
        expect_refusal(parse_and_measure, data)


if __name__ == "__main__":
    run(test_one_input, ["edgec.core.tflite_model", "edgec.report.artifact_stats"])
