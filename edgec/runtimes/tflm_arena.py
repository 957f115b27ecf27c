"""Measure a model's TFLite Micro arena by running it in the TFLite Micro interpreter.

The Python interpreter of the ``tflite-micro`` package records every allocation and prints them with
``print_allocations()`` to file descriptor 2 (C++ stdio, not Python's ``sys.stderr``), so fd 2 is
redirected to a temporary file around the call and the text parsed.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from edgec.core import isolate
from edgec.core.errors import ToolchainError
from edgec.core.tflite_model import parse

# The interpreter's default arena fits small models only; measuring needs room for any model.
HOST_ARENA_BYTES = 256 << 20

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")


def _capture_fd2(fn) -> str:
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def measure_arena(tflite: bytes, *, stage: str = "export", model: str = "the model") -> dict:
    """Run one inference (zeros) and return ``{"arena_bytes", "head_bytes", "tail_bytes", "log"}``.

    Runs in edgec's worker process (:mod:`edgec.core.isolate`): an interpreter abort is a
    :class:`~edgec.core.isolate.NativeCrash` naming ``stage`` and ``model``.
    """
    return isolate.call(_measure, tflite, stage=stage, what=f"TFLite Micro interpreter on {model}")


def _measure(tflite: bytes) -> dict:
    from tflite_micro.python.tflite_micro import runtime

    try:
        interp = runtime.Interpreter.from_bytes(tflite, arena_size=HOST_ARENA_BYTES)
        for i in range(len(parse(tflite).inputs)):
            detail = interp.get_input_details(i)
            interp.set_input(np.zeros(detail["shape"], detail["dtype"]), i)
        interp.invoke()
    except (RuntimeError, ValueError) as e:
        raise ToolchainError(f"TFLite Micro interpreter failed: {e}", stage="export") from None
    text = _capture_fd2(interp.print_allocations)
    total = _TOTAL.search(text)
    if not total:
        raise ToolchainError("TFLite Micro printed no arena total", stage="export")
    head, tail = _HEAD.search(text), _TAIL.search(text)
    return {"arena_bytes": int(total.group(1)), "head_bytes": int(head.group(1)) if head else None,
            "tail_bytes": int(tail.group(1)) if tail else None, "log": text}

