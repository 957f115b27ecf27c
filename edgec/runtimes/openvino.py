"""Run OpenVINO IR artifacts in OpenVINO's CPU plugin: float samples in, float outputs out.

Same contract and input handling as :mod:`edgec.runtimes.onnxruntime` (float I/O, NHWC <-> NCHW fitted,
a fixed batch of 1 run one sample at a time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.core.errors import ToolchainError
from edgec.runtimes.base import batches, fit_layout, order_inputs

STAGE = "verify"


def openvino_reason(error: Exception) -> str:
    """The line of an OpenVINO exception that says why: its text starts with a source location
    (``Exception from src/inference/src/cpp/core.cpp:117:``) and puts the reason on the lines after."""
    lines = [l.strip() for l in str(error).splitlines() if l.strip()]
    useful = [l for l in lines if not l.startswith("Exception from src/")] or lines or [""]
    return useful[0][:400]


def predict_openvino(artifact: Path, inputs: dict[str, np.ndarray], *, device: str = "CPU"
                     ) -> list[np.ndarray]:
    """Run an OpenVINO IR (``model.xml`` beside ``model.bin``) on ``device`` (verification: CPU)."""
    import openvino as ov

    artifact = Path(artifact)
    if artifact.is_dir():
        artifact = artifact / "model.xml"
    core = ov.Core()
    try:
        compiled = core.compile_model(core.read_model(str(artifact)), device,
                                      {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    except RuntimeError as e:
        raise ToolchainError(f"OpenVINO cannot compile {artifact} for {device}: {openvino_reason(e)}",
                             stage=STAGE) from None
    ports = compiled.inputs
    names = [p.get_any_name() for p in ports]
    shapes = [[d.get_length() if d.is_static else -1 for d in p.get_partial_shape()] for p in ports]
    arrays = [fit_layout(np.asarray(x, np.float32), s, n)
              for x, s, n in zip(order_inputs(inputs, names), shapes, names)]
    fixed = any(s and s[0] == 1 for s in shapes)
    request = compiled.create_infer_request()
    outs: list[list[np.ndarray]] = [[] for _ in compiled.outputs]
    for chunk in batches(arrays, fixed):
        result = request.infer({i: x for i, x in enumerate(chunk)})
        for i, port in enumerate(compiled.outputs):
            outs[i].append(np.array(result[port], np.float32))
    return [np.concatenate(o) for o in outs]
