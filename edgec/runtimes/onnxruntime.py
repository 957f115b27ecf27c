"""Run ``.onnx`` artifacts in ONNX Runtime: float samples in, float outputs out.

Same contract as :mod:`edgec.runtimes.base`: ``predict(artifact, inputs) -> list[np.ndarray]``. The
artifacts edgec writes keep float32 inputs and outputs (QDQ ONNX, OpenVINO IR with FakeQuantize), so
no quantization of the inputs is needed here; an integer input is quantized with the scale and zero
point of the QuantizeLinear that consumes it is out of scope and refused. Layout: samples given NHWC
for a model that wants NCHW (or the reverse) are transposed, so one calibration set serves both.
Artifacts with a fixed batch of 1 are run one sample at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.core.errors import ToolchainError
from edgec.runtimes.base import batches, fit_layout, order_inputs

STAGE = "verify"


def predict_onnxruntime(artifact: Path, inputs: dict[str, np.ndarray], *, num_threads: int = 1
                        ) -> list[np.ndarray]:
    """Run a ``.onnx`` artifact in ONNX Runtime on the CPU (all graph optimizations on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
    except (RuntimeError, ValueError) as e:  # ORT raises its own Fail/InvalidGraph, RuntimeError subclasses
        raise ToolchainError(f"ONNX Runtime cannot load {artifact}: {str(e).splitlines()[0]}",
                             stage=STAGE) from None
    specs = session.get_inputs()
    if any(s.type != "tensor(float)" for s in specs):
        raise ToolchainError(f"{artifact}: only float32 inputs are supported", stage=STAGE)
    arrays = [fit_layout(np.asarray(x, np.float32), s.shape, s.name)
              for x, s in zip(order_inputs(inputs, [s.name for s in specs]), specs)]
    fixed = any(s.shape and s.shape[0] == 1 for s in specs)
    outs: list[list[np.ndarray]] = [[] for _ in session.get_outputs()]
    for chunk in batches(arrays, fixed):
        for i, y in enumerate(session.run(None, {s.name: x for s, x in zip(specs, chunk)})):
            outs[i].append(np.asarray(y, np.float32))
    return [np.concatenate(o) for o in outs]
