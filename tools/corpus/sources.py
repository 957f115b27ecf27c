"""Where the real models are: the repository's example model and calibration set, the shared models (MLPerf Tiny's,
the PyTorch exports), for the corpus, the tests and every tool.

``tests/conftest.py`` imports these paths from here, so the tests and the corpus read the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = ROOT / "edgec" / "examples" / "digits_cnn.keras"
DIGITS_CALIBRATION = ROOT / "calibration" / "digits" / "calibration.npz"
# The team's shared models live beside the repository (../shared/models), never inside it; from a checkout
# elsewhere (a git worktree, say) EDGEC_SHARED_MODELS names that folder and EDGEC_MLPERF_MODELS the MLPerf Tiny
# one. Every tool and the tests read these two, so one variable moves them all.
SHARED = Path(os.environ.get("EDGEC_SHARED_MODELS") or ROOT.parent / "shared" / "models")
MLPERF = Path(os.environ.get("EDGEC_MLPERF_MODELS") or SHARED / "mlperf-tiny")
