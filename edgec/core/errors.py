"""The error hierarchy of edgec and the exit code each maps to.

Every message names the stage, and where it applies the target, the layer or op, and what to change.
The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``; anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib

# What zipfile raises on a damaged archive: bad structure or CRC, truncation, a corrupt deflate or
# LZMA stream, an unknown compression method (NotImplementedError), an encrypted member (RuntimeError).
# Here because the model loaders and the calibration loaders both open zip archives.
ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
              RuntimeError)


class EdgecError(Exception):
    """Base class: an expected failure with a one-line message and an exit code."""

    exit_code = 3

    def __init__(self, message: str, *, stage: str | None = None, target: str | None = None):
        self.stage = stage
        self.target = target
        super().__init__(message)

    def __str__(self) -> str:
        prefix = []
        if self.stage:
            prefix.append(self.stage)
        if self.target:
            prefix.append(self.target)
        head = f"[{' / '.join(prefix)}] " if prefix else ""
        return head + " ".join(super().__str__().split())


class InputError(EdgecError):
    """Bad input or configuration: a model file, calibration data, a target, a flag (exit 2)."""

    exit_code = 2


class GateError(EdgecError):
    """A verification threshold or a flash/RAM budget was not met (exit 1)."""

    exit_code = 1


class ToolchainError(EdgecError):
    """A toolchain (converter, compiler, runtime) failed on input we believed valid (exit 3)."""

    exit_code = 3
