"""Shared fixtures: paths of the bundled example and a CLI runner that returns (code, stderr)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS_MODEL = ROOT / "edgec" / "examples" / "digits_cnn.keras"
DIGITS_CALIBRATION = ROOT / "calibration" / "digits" / "calibration.npz"
DIGITS_EVAL = ROOT / "calibration" / "digits" / "eval.npz"
# Real pretrained MLPerf Tiny models live beside the repository (../shared), never inside it;
# EDGEC_SHARED names that folder when the checkout sits elsewhere (a git worktree).
MLPERF = Path(os.environ.get("EDGEC_SHARED", ROOT.parent / "shared")) / "models" / "mlperf-tiny"
needs_mlperf = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found at {MLPERF}")


@pytest.fixture
def run_cli(capsys):
    """Run ``edgec`` in-process; return (exit code, stdout, stderr)."""
    from edgec.cli import main

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def assert_refused(result, code: int, *words: str) -> None:
    """A CLI result (code, out, err) that refused: the exit code, one ``edgec: error:`` line, the words."""
    status, _, err = result
    assert status == code, err
    line = err.strip()
    assert line.startswith("edgec: error:") and "\n" not in line and "Traceback" not in line, err
    for word in words:
        assert word in line, line


def resnet8_calibration(path, n=1200, seed=0):
    """Stable natural-photo crops for the MLPerf ResNet-8 (see tools/photo_crops.py), saved as npz."""
    import numpy as np

    from edgec.tf import keras
    from tools.photo_crops import stable_crops

    model = keras().models.load_model(MLPERF / "pretrainedResnet.h5", compile=False)
    np.savez(path, input_1=stable_crops(model, n, seed))
    return path
