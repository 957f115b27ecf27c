"""`edgec sweep` on real Ray: a local cluster, a `ray start --head` cluster, and a worker killed mid-trial.

Each trial is a real `edgec compile` of the digits example for cortex-m4 (TFLite Micro), so the
numbers compared between runs are measured on real artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, ROOT

SPACE = 'search = "grid"\n[space]\nclusters = [0, 8]\n'
RAY = Path(sys.executable).parent / "ray"


def _sweep(tmp: Path, out: str, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
    space = tmp / "space.toml"
    space.write_text(SPACE)
    cmd = [sys.executable, "-m", "edgec", "sweep", str(DIGITS_MODEL), "-t", "cortex-m4",
           "--calibration", str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL), "--space", str(space),
           "-o", str(tmp / out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    done = _sweep(tmp, "local", "--workers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp, json.loads((tmp / "local" / "sweep.json").read_text())


def test_local_sweep_runs_every_trial_as_a_compile_and_writes_the_front(local_sweep):
    tmp, result = local_sweep
    assert result["engine"]["name"] == "ray" and result["engine"]["address"] == "local"
    assert result["engine"]["version"] and result["engine"]["workers"] == 2
    trials = {t["recipe"]["clusters"]: t for t in result["trials"]}
    assert set(trials) == {0, 8} and all(t["status"] == "ok" for t in trials.values())
    for clusters, t in trials.items():  # the metrics are the trial's own report.json, not a copy
        report = json.loads((tmp / "local" / "trials" / t["id"] / "out" / "cortex-m4" / "report.json").read_text())
        assert t["metrics"]["flash_bytes"] == report["size"]["flash_bytes"] > 0
        assert t["metrics"]["accuracy"] == report["verification"]["artifact_top1"]
    # 8 clusters (LUT) is smaller in flash and bigger in RAM (decoded weights): both are on the front
    assert trials[8]["metrics"]["flash_bytes"] < trials[0]["metrics"]["flash_bytes"]
    assert set(result["pareto"]) <= {t["id"] for t in result["trials"]} and result["pareto"]
    assert (tmp / "local" / "sweep.html").read_text().count("<circle") == 2


def test_best_trial_is_written_as_a_recipe_that_compile_reads(local_sweep, tmp_path):
    tmp, result = local_sweep
    best = result["best"]
    assert best["status"] == "ok"
    assert best["metrics"]["accuracy"] == max(t["metrics"]["accuracy"] for t in result["trials"])
    printed = subprocess.run([sys.executable, "-m", "edgec", "compile", str(DIGITS_MODEL), "-t", "cortex-m4",
                              "--recipe", str(tmp / "local" / "edgec.toml"), "--print-recipe"],
                             capture_output=True, text=True, cwd=ROOT)
    assert printed.returncode == 0, printed.stderr
    assert f"clusters = {best['recipe']['clusters']}\n" in printed.stdout


def test_rerun_skips_finished_trials(local_sweep):
    tmp, first = local_sweep
    start = time.monotonic()
    done = _sweep(tmp, "local", "--workers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads((tmp / "local" / "sweep.json").read_text())
    assert again["skipped"] == 2
    assert [t["metrics"] for t in again["trials"]] == [t["metrics"] for t in first["trials"]]
    assert time.monotonic() - start < 60  # no compile ran (each takes longer than Ray's start)


def test_a_worker_killed_mid_trial_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    proc = subprocess.Popen([sys.executable, "-m", "edgec", "sweep", str(DIGITS_MODEL), "-t", "cortex-m4",
                             "--calibration", str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL),
                             "--space", str(space), "-o", str(tmp_path / "out"), "--workers", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"compile" in cmdline and str(tmp_path / "out").encode() in b" ".join(cmdline):
                victim = (int(pid), ppid, cmdline)
                break
        time.sleep(0.5)
    assert victim, "no trial compile started"
    time.sleep(3)  # mid-trial: the compile is loading the model
    os.kill(victim[1], signal.SIGKILL)  # the Ray worker running the trial
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    result = json.loads((tmp_path / "out" / "sweep.json").read_text())
    status = {t["id"]: t for t in result["trials"]}
    killed = next(t for t in result["trials"] if str(tmp_path / "out" / "trials" / t["id"]).encode()
                  in b" ".join(victim[2]))
    assert killed["status"] == "failed" and "Ray worker lost" in killed["reason"]
    others = [t for t in status.values() if t["id"] != killed["id"]]
    assert others and all(t["status"] == "ok" for t in others)
    assert not (tmp_path / "out" / "trials" / killed["id"] / "out" / "cortex-m4").exists()
    time.sleep(1)
    assert not Path(f"/proc/{victim[0]}").exists() or \
        Path(f"/proc/{victim[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # compile died with it


def test_a_ray_start_cluster_gives_the_same_trials_and_front(local_sweep):
    tmp, local = local_sweep
    port, client = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="edgec-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # `ray start --block` in the foreground: SIGTERM stops exactly this cluster (`ray stop` would stop
    # every Ray on the machine). Loopback only.
    head = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={port}",
                             f"--ray-client-server-port={client}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and head.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", client)) == 0:
                    break
            time.sleep(1)
        assert head.poll() is None, head.stderr.read()[-2000:]
        done = _sweep(tmp, "cluster", "--address", f"ray://127.0.0.1:{client}")
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        head.terminate()
        head.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
    remote = json.loads((tmp / "cluster" / "sweep.json").read_text())
    assert remote["engine"]["address"] == f"ray://127.0.0.1:{client}" and remote["engine"]["workers"] == 2
    assert [t["id"] for t in remote["trials"]] == [t["id"] for t in local["trials"]]
    assert [t["metrics"] for t in remote["trials"]] == [t["metrics"] for t in local["trials"]]
    assert remote["pareto"] == local["pareto"]
