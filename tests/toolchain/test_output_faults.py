"""Faults around the output folder: SIGKILL at random moments, two compiles into one OUT, a
calibration set that cannot fit in memory. Real compiles in real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, ROOT, assert_refused

pytestmark = pytest.mark.toolchain


def test_sigkill_at_seeded_points_leaves_only_complete_folders_and_the_next_run_cleans(capsys):
    from tools.kill_compile import main

    assert main(["--kills", "2", "--seed", "1", "--files", "25"]) == 0  # 25: what cortex-m4 + onnx-cpu write
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("kill_compile: 2 SIGKILLs") and "0 rounds with an incomplete" in line, line
    assert line.endswith("final run exit 0, 0 temporary folders left: OK"), line


def _compile(out, *targets):
    return [sys.executable, "-m", "edgec", "compile", str(DIGITS_MODEL), *(a for t in targets for a in ("-t", t)),
            "--calibration", str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL), "-o", str(out)]


def test_a_second_compile_into_a_busy_out_is_refused_and_a_native_abort_says_where(tmp_path):
    from tools.kill_compile import folder_problems, temp_folders

    from edgec.core.outdir import remove_stale

    first = subprocess.Popen(_compile(tmp_path, "cortex-m4", "onnx-cpu"), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while first.poll() is None and not any(n.startswith(".onnx-cpu.") for n in temp_folders(tmp_path)):
        assert time.monotonic() < deadline
        time.sleep(0.02)  # until cortex-m4 is done and onnx-cpu is being written (OUT is locked)
    assert first.poll() is None, "the first compile ended before it could be raced"
    second = subprocess.run(_compile(tmp_path, "cortex-m4"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert_refused((second.returncode, second.stdout, second.stderr), 2, str(tmp_path),
                   f"being written by another edgec compile or sweep (pid {first.pid})", "another -o")
    first.send_signal(signal.SIGABRT)  # what a native abort in a toolchain does: no Python cleanup runs
    _, err = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in err and "edgec/" in err, err  # where it happened
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["cortex-m4"]
    assert folder_problems(tmp_path / "cortex-m4") == []  # complete, undisturbed by the second compile
    stale = temp_folders(tmp_path)
    assert list(stale.values()) == [first.pid] and next(iter(stale)).startswith(".onnx-cpu.")
    assert [p.name for p in remove_stale(tmp_path)] == list(stale)  # what the next compile does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cortex-m4"]
    (tmp_path / "cortex-m4" / "model.tflite").write_bytes(b"x")  # and the completeness check can fail
    assert folder_problems(tmp_path / "cortex-m4") == [
        "cortex-m4: model.tflite differs from its SHA-256 in the manifest"]


def test_a_calibration_set_too_large_for_memory_is_refused_with_numbers_before_any_work(run_cli, tmp_path):
    from edgec.core.memory_check import available_bytes

    # A .npy whose header declares twice this machine's available memory: a sparse file, mapped, never read.
    count = 2 * available_bytes() // (8 * 8 * 4) + 1
    np.lib.format.open_memmap(tmp_path / "huge.npy", mode="w+", dtype=np.float32, shape=(count, 8, 8, 1)).flush()
    result = run_cli("compile", DIGITS_MODEL, "-t", "cortex-m4", "--calibration", tmp_path / "huge.npy",
                     "-o", tmp_path / "out")
    assert_refused(result, 2, "[calibration]", f"{count:,} samples x 256 B", "of memory is available",
                   "use at most")
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "huge.npy").stat().st_blocks * 512 < 1 << 20  # nothing was written into it

