"""The layering of edgec/ holds: `lint-imports` (import-linter) checks the contracts in pyproject.toml.

Each layer imports only the layers below it, ``edgec.core`` nothing else of edgec, and the backends
not each other (README, "Layout").
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(root: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the venv's ``lint-imports`` on the edgec package under ``root`` (its pyproject.toml)."""
    exe = Path(sys.executable).with_name("lint-imports")
    env = dict(os.environ, PYTHONPATH=str(root))  # this checkout's edgec, not an installed one
    return subprocess.run([str(exe), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    done = lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_a_layer_violation_fails(tmp_path):
    # A copy of the package with one upward import (core -> pipeline): the contracts must catch it.
    import shutil

    shutil.copytree(ROOT / "edgec", tmp_path / "edgec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "edgec" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom edgec import pipeline  # noqa: E402,F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "edgec.core is not allowed to import edgec.pipeline" in done.stdout
