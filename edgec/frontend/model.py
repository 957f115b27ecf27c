"""What every front end returns: :class:`LoadedModel` (the Keras loader, the ONNX reader, the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgec.frontend.onnx.graph import param_count


@dataclass
class LoadedModel:
    """A model ready for the pipeline: a float ``tf_keras.Model`` and/or ONNX graph, and where it came from.

    ``keras_model`` is None for an ONNX model loaded without the Keras lowering (ONNX Runtime and
    OpenVINO targets only); then ``onnx_model`` (run in ONNX Runtime) is the float reference.
    """

    keras_model: Any
    source: str
    kind: str  # keras | h5 | savedmodel | onnx
    inputs: dict[str, tuple[tuple[int, ...], str]]
    outputs: dict[str, tuple[tuple[int, ...], str]]
    onnx_model: Any = None  # the original ONNX model, when the source was ONNX
    keras3_model: Any = None  # the Keras 3 original that ``keras_model`` was rebuilt from
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self) -> Any:
        """The float model verification compares against: the Keras model, else the ONNX graph."""
        return self.keras_model if self.keras_model is not None else self.onnx_model

    @property
    def params(self) -> int:
        """Number of weights of the float model."""
        if self.keras_model is not None:
            return int(self.keras_model.count_params())
        return param_count(self.onnx_model)
