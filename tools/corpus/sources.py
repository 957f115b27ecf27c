"""The real files the corpus mutates: the repository's example model and calibration set, MLPerf Tiny's models.

``tests/conftest.py`` imports these paths from here, so the tests and the corpus read the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = ROOT / "edgec" / "examples" / "digits_cnn.keras"
DIGITS_CALIBRATION = ROOT / "calibration" / "digits" / "calibration.npz"
# Real pretrained MLPerf Tiny models live beside the repository (../shared), never inside it;
# EDGEC_MLPERF_MODELS points elsewhere (a git worktree, say).
MLPERF = Path(os.environ.get("EDGEC_MLPERF_MODELS") or ROOT.parent / "shared" / "models" / "mlperf-tiny")
