"""Stale temporary folders and OUT's lock (edgec.core.outdir); the memory pre-check (edgec.core.memory_check)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_folders_of_dead_owners_and_legacy_edgec_folders_are_stale(tmp_path):
    from edgec.core.outdir import remove_stale

    dead = _dead_pid()
    (tmp_path / f".cortex-m4.{dead}-abcd_123" / "intermediate").mkdir(parents=True)
    (tmp_path / f".onnx-cpu.old-{dead}").mkdir()
    (tmp_path / ".litert.k2j3h4g5" / "intermediate").mkdir(parents=True)  # before the pid was in the name
    live = [f".cortex-m4.{os.getpid()}-zzzzzzzz", f".onnx-cpu.{os.getppid()}-yyyyyyyy", ".git", ".cache.abcdefgh",
            "cortex-m4"]  # ours, a live process's, not edgec's, a hidden folder without intermediate/, final
    for name in live:
        (tmp_path / name).mkdir()
    removed = remove_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([f".cortex-m4.{dead}-abcd_123", f".onnx-cpu.old-{dead}",
                                                      ".litert.k2j3h4g5"])
    assert sorted(os.listdir(tmp_path)) == sorted(live)


def test_a_locked_out_is_refused_naming_the_holder_and_free_again_when_it_dies(tmp_path):
    from edgec.core.errors import InputError
    from edgec.core.outdir import check_free, locked

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from edgec.core.outdir import locked, temp_prefix\n"
        f"with locked({str(out)!r}):\n"
        f"    (__import__('pathlib').Path({str(out)!r}) / (temp_prefix('cortex-m4') + 'abcdefgh')).mkdir()\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"being written by another edgec compile or sweep \(pid {holder.pid}\)") as e:
            check_free(out)
        assert e.value.exit_code == 2 and "another -o" in str(e.value)
        with pytest.raises(InputError, match="being written"), locked(out):
            pass
    finally:
        holder.kill()  # SIGKILL: the operating system releases the lock
        holder.wait()
    check_free(out)
    with locked(out) as stale:
        assert [p.name for p in stale] == [f".cortex-m4.{holder.pid}-abcdefgh"]
    assert os.listdir(out) == []


def test_memory_check_refuses_with_the_numbers_and_how_many_samples_fit():
    from edgec.core.errors import InputError
    from edgec.core.memory_check import BATCH, check

    check(1000, 784 * 4, 10_000, available=1 << 30)  # 3 MiB of samples: fits
    with pytest.raises(InputError) as e:
        check(2_000_000, 784 * 4, 10_000, available=1 << 30)
    msg = str(e.value)
    assert e.value.exit_code == 2 and msg.startswith("[calibration]")
    assert "2,000,000 samples x 3,136 B" in msg and "5.84 GiB" in msg and "1.00 GiB of memory is available" in msg
    assert f"use at most {((1 << 30) - BATCH * 10_000) // 3136:,} samples" in msg
    check(10**9, 4, 4, available=None)  # no /proc/meminfo: no check


def test_available_memory_is_read_from_meminfo(tmp_path):
    from edgec.core.memory_check import available_bytes

    (tmp_path / "meminfo").write_text("MemTotal:  2048 kB\nMemFree:  100 kB\nMemAvailable:    1024 kB\n")
    assert available_bytes(tmp_path / "meminfo") == 1024 * 1024
    assert available_bytes(tmp_path / "none") is None
    assert available_bytes() > 0  # this machine's
