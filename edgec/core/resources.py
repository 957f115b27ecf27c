"""Where the shipped data folders (``targets/``, ``calibration/``, examples) live.

In a wheel they are force-included under ``edgec/_data``; in a source checkout (editable install)
they sit at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # edgec/, this module being edgec/core/resources.py


def data_dir(name: str) -> Path:
    """Return the folder ``name`` (``"targets"`` or ``"calibration"``) of this installation."""
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def example_path(name: str) -> Path:
    """Return the path of a bundled example model, e.g. ``digits_cnn.keras``."""
    return _PACKAGE / "examples" / name
