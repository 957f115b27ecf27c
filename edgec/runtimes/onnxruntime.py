"""Run ONNX and OpenVINO IR artifacts in their real runtimes: float samples in, float outputs out.

Same contract as :mod:`edgec.runtimes`: ``predict(artifact, inputs) -> list[np.ndarray]``. The
artifacts edgec writes keep float32 inputs and outputs (QDQ ONNX, OpenVINO IR with FakeQuantize), so
no quantization of the inputs is needed here; an integer input is quantized with the scale and zero
point of the QuantizeLinear that consumes it is out of scope and refused. Layout: samples given NHWC
for a model that wants NCHW (or the reverse) are transposed, so one calibration set serves both.
Artifacts with a fixed batch of 1 are run one sample at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.core.errors import InputError, ToolchainError

STAGE = "verify"


def fit_layout(x: np.ndarray, shape: list, name: str) -> np.ndarray:
    """``x`` (batch first) in the model input's ``shape``, transposing NHWC <-> NCHW when needed."""
    want = [d if isinstance(d, int) and d > 0 else None for d in shape]

    def matches(a: np.ndarray) -> bool:
        return a.ndim == len(want) and all(w is None or w == s for w, s in zip(want[1:], a.shape[1:]))

    if matches(x):
        return x
    if x.ndim == 4:
        for perm in ((0, 3, 1, 2), (0, 2, 3, 1)):
            if matches(x.transpose(perm)):
                return np.ascontiguousarray(x.transpose(perm))
    raise InputError(f"input '{name}': samples of shape {x.shape[1:]} do not fit the artifact's "
                     f"{tuple(shape[1:])}", stage=STAGE)


def _batched(arrays: list[np.ndarray], fixed_batch: bool):
    count = len(arrays[0])
    step = 1 if fixed_batch else max(count, 1)
    for start in range(0, count, step):
        yield [a[start:start + step] for a in arrays]


def predict_onnxruntime(artifact: Path, inputs: dict[str, np.ndarray], *, num_threads: int = 1
                        ) -> list[np.ndarray]:
    """Run a ``.onnx`` artifact in ONNX Runtime on the CPU (all graph optimizations on)."""
    from edgec.runtimes.base import order_inputs  # here: runtimes imports this module

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
    for chunk in _batched(arrays, fixed):
        for i, y in enumerate(session.run(None, {s.name: x for s, x in zip(specs, chunk)})):
            outs[i].append(np.asarray(y, np.float32))
    return [np.concatenate(o) for o in outs]


def predict_openvino(artifact: Path, inputs: dict[str, np.ndarray], *, device: str = "CPU"
                     ) -> list[np.ndarray]:
    """Run an OpenVINO IR (``model.xml`` beside ``model.bin``) on ``device`` (verification: CPU)."""
    from edgec.runtimes.base import order_inputs  # here: runtimes imports this module

    import openvino as ov

    artifact = Path(artifact)
    if artifact.is_dir():
        artifact = artifact / "model.xml"
    core = ov.Core()
    try:
        compiled = core.compile_model(core.read_model(str(artifact)), device,
                                      {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    except RuntimeError as e:
        raise ToolchainError(f"OpenVINO cannot compile {artifact} for {device}: {str(e).splitlines()[0]}",
                             stage=STAGE) from None
    ports = compiled.inputs
    names = [p.get_any_name() for p in ports]
    shapes = [[d.get_length() if d.is_static else -1 for d in p.get_partial_shape()] for p in ports]
    arrays = [fit_layout(np.asarray(x, np.float32), s, n)
              for x, s, n in zip(order_inputs(inputs, names), shapes, names)]
    fixed = any(s and s[0] == 1 for s in shapes)
    request = compiled.create_infer_request()
    outs: list[list[np.ndarray]] = [[] for _ in compiled.outputs]
    for chunk in _batched(arrays, fixed):
        result = request.infer({i: x for i, x in enumerate(chunk)})
        for i, port in enumerate(compiled.outputs):
            outs[i].append(np.array(result[port], np.float32))
    return [np.concatenate(o) for o in outs]
