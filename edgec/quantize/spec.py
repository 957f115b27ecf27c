"""One target's quantization settings, resolved once: :class:`QuantSpec`.

The command line (``--calibration-method``, ``--keep-float``, ``--max-accuracy-drop``, ``--stem``,
``--layer-error``), the same keywords of :func:`edgec.compile`, and the target profile's
``[quantization]`` table are merged here, checked, and frozen. The pipeline builds one per target
before any work (:func:`edgec.pipeline.compile`), keeps it on the build (``Build.quant``) and every
quantizer (TFLite converter, ONNX Runtime, NNCF, the per-layer error and keep-float searches) reads
its typed attributes.

The target's integer arithmetic (``cpu.isa``, ``quantization.overflow_fix``) is not in the spec: it is
a property of the CPU that :func:`edgec.core.targets.int8_arithmetic` derives from the profile, and the
host-ISA twin (:mod:`edgec.verify.host_isa`) re-exports the same spec for another CPU.

The sample caps are fields too, so that every limit on how many calibration samples a tool sees is
named in one place, with the reason for its number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgec.core.errors import InputError

# No NumPy or toolchain import here: the command line takes its choices from these at start-up.
# ONNX Runtime's calibrators (quantize_static); NNCF maps them to its range estimators.
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
STEM_SETTINGS = ("int8", "float", "auto")  # what --stem means: edgec.quantize.stem


@dataclass(frozen=True)
class QuantSpec:
    """How one target is quantized: what was asked on the command line over the target's own table.

    The defaults are a target with an empty ``[quantization]`` table and no quantization flags.
    """

    scheme: str = "int8"                    # int8 | fp16 | fp32 (the target's quantization.scheme)
    calibration_method: str = "minmax"      # --calibration-method, else the target's: minmax | entropy | percentile
    per_channel: bool = True                # per-output-channel weight scales (TFLite, ONNX Runtime)
    io_dtype: str = "int8"                  # the .tflite's input/output type: int8 | uint8 | float32
    activation_dtype: str = "uint8"         # ONNX QDQ activations: uint8 (x86 U8S8 kernels) | int8 (TensorRT)
    stem: str = "int8"                      # --stem, else the target's: one of STEM_SETTINGS
    keep_float: tuple[str, ...] = ()        # --keep-float: layers (TFLite/ONNX) or operations (OpenVINO) left float
    max_accuracy_drop: float | None = None  # --max-accuracy-drop: the top-1 drop int8 may cost, else None
    int16x8: bool = False                   # the target has int16-activation kernels (a 16x8 model may ship)
    layer_error: bool = False               # --layer-error: the per-layer int8 error table in the report

    # Sample caps: how many calibration samples each tool sees at most.
    # ONNX Runtime quantize_static: enough for min/max and histograms of small edge models, fast to collect.
    onnx_calibration_samples: int = 256
    # NNCF: its own default subset_size, so nncf.quantize behaves as documented.
    nncf_calibration_samples: int = 300
    # TFLite's QuantizationDebugger (--layer-error, --keep-float, --max-accuracy-drop): it runs the float
    # and the int8 model on each sample, tensor by tensor, so its time grows with the count; ranking
    # layers by error needs tens of samples, not the whole calibration set.
    debug_samples: int = 64
    # ONNX Runtime's qdq_loss_debug: it keeps every tensor of every sample in memory, for the float
    # and the QDQ model, so fewer than the TFLite debugger.
    qdq_debug_samples: int = 32

    def __post_init__(self) -> None:
        self.validate()

    @property
    def mixed(self) -> bool:
        """Whether some layers stay float: ``--keep-float`` or ``--max-accuracy-drop`` was given."""
        return bool(self.keep_float) or self.max_accuracy_drop is not None

    def validate(self) -> QuantSpec:
        """Refuse a value no quantizer can use, with the flag's name and what is allowed."""
        drop = self.max_accuracy_drop
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float))
                                 or not math.isfinite(drop) or not 0 <= drop < 1):
            raise InputError(f"--max-accuracy-drop {drop}: give a top-1 drop between 0 and 1 (e.g. 0.01)",
                             stage="compile")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise InputError(f"calibration method '{self.calibration_method}' is unknown (use one of "
                             f"{', '.join(CALIBRATION_METHODS)})", stage="quantize")
        if self.stem not in STEM_SETTINGS:
            raise _unknown_stem(self.stem)
        if not isinstance(self.keep_float, tuple) or not all(isinstance(x, str) for x in self.keep_float):
            raise InputError(f"--keep-float {self.keep_float!r}: give layer names (a list of strings)",
                             stage="compile")
        caps = ("onnx_calibration_samples", "nncf_calibration_samples", "debug_samples", "qdq_debug_samples")
        for name in caps:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} = {value!r}: give a number of samples, 1 or more", stage="quantize")
        return self

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], target: Mapping[str, Any]) -> QuantSpec:
        """The spec of ``target``: the run's settings (command line, API keywords) over its profile.

        ``settings`` may hold other keys (the model path, the compression recipe); only
        ``calibration_method``, ``keep_float``, ``max_accuracy_drop``, ``stem`` and ``layer_error`` are read. A bad value is an :class:`InputError` naming the target.
        """
        quant = target.get("quantization", {})
        if quant.get("stem") not in (None, *STEM_SETTINGS):  # the target file's, even where --stem overrides it
            raise _unknown_stem(quant["stem"], target.get("id"))
        keep = settings.get("keep_float") or ()
        try:
            return cls(scheme=quant.get("scheme", "int8"),
                       calibration_method=settings.get("calibration_method") or quant.get("calibration_method")
                       or "minmax",
                       per_channel=quant.get("per_channel", True),
                       io_dtype=quant.get("io_dtype", "int8"),
                       activation_dtype=quant.get("activation_dtype", "uint8"),
                       stem=settings.get("stem") or quant.get("stem") or "int8",
                       keep_float=tuple(keep) if isinstance(keep, (list, tuple)) else keep,
                       max_accuracy_drop=settings.get("max_accuracy_drop"),
                       int16x8=quant.get("int16x8", False),
                       layer_error=bool(settings.get("layer_error")))
        except InputError as e:
            if e.stage == "quantize":  # a value that may come from the target file: name the target
                e.target = e.target or target.get("id")
            raise


def _unknown_stem(value: Any, target: str | None = None) -> InputError:
    return InputError(f"stem '{value}' is unknown (use one of {', '.join(STEM_SETTINGS)})", stage="quantize",
                      target=target)
