"""The state of one target's build, passed from stage to stage, and atomic output folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgec.core.calibration import Dataset
from edgec.core.errors import InputError
from edgec.core.outdir import temp_prefix


@dataclass
class Build:
    """One target's build in progress (see DESIGN.md: the output folder and report.json)."""

    target: dict
    keras_model: Any
    calibration: Dataset
    evaluation: Dataset
    out: Path  # the temporary target folder being written; renamed into place when complete
    work: Path  # out / "intermediate"
    settings: dict  # the run's settings as asked (model, targets, recipe, flags): manifest.json's recipe
    quant: Any  # edgec.quantize.spec.QuantSpec (core sits below quantize): what the quantizers read
    report: dict
    int8_tflite: bytes | None = None
    float_tflite: bytes | None = None
    artifact: Path | None = None  # the file verification runs
    final_tflite: bytes | None = None  # the .tflite that ships, when the format has one
    failures: list[str] = field(default_factory=list)
    onnx_model: Any = None  # the user's folded ONNX graph, quantized as is (ONNX/OpenVINO, no lowering)
    analysis: Any = None  # per-layer int8 error (edgec.quantize.layer_error.LayerAnalysis), computed on demand

    def stage(self, name: str, **details) -> "_StageTimer":
        """Time a stage and append ``{"name", "seconds", **details}`` to ``report["stages"]``."""
        return _StageTimer(self.report.setdefault("stages", []), name, details)


class _StageTimer(contextlib.AbstractContextManager):
    def __init__(self, stages: list, name: str, details: dict):
        self.entry = {"name": name, **details}
        self.stages = stages

    def __enter__(self):
        self.start = time.perf_counter()
        return self.entry

    def __exit__(self, *exc):
        self.entry["seconds"] = round(time.perf_counter() - self.start, 3)
        self.stages.append(self.entry)
        return False


@contextlib.contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success it replaces ``final`` whole.

    On any exception the temporary folder is removed and ``final`` is left as it was, so a target
    folder is written whole or not at all. A process killed outright leaves the temporary folder;
    the next compile into the same OUT removes it (:mod:`edgec.core.outdir`).
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        # The pid in the name lets the next run tell a killed run's folder from a live one.
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), dir=final.parent))
    except OSError as e:
        raise InputError(f"cannot write the output folder {final.parent}: {e.strerror}", stage="output") from None
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
