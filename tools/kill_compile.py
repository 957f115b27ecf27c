"""SIGKILL a multi-target `edgec compile` at seeded random moments; check OUT after every kill.

Each round starts the same compile (the digits example for cortex-m4 + onnx-cpu, 100 eval samples)
as a subprocess and kills it with SIGKILL at a seeded random moment of its output stage: a delay
drawn uniformly from [0, WINDOW) seconds after the round's first temporary folder appears in OUT
(before that moment nothing is written to OUT). WINDOW is the length of a first, complete run's
output stage, unless given. After each kill, every final target folder in OUT must be complete:
manifest.json lists every file, and every file's SHA-256 matches it. Temporary folders a killed
round leaves behind must be gone once the next round has reached the output stage (it removes
them under OUT's lock). A last round runs to the end and must leave complete folders and no
temporary folder at all.

    .venv/bin/python tools/kill_compile.py --kills 20 [--seed 0] [--window S] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "edgec" / "examples" / "digits_cnn.keras"
CALIBRATION = ROOT / "calibration" / "digits" / "calibration.npz"
EVAL = ROOT / "calibration" / "digits" / "eval.npz"
TARGETS = ("cortex-m4", "onnx-cpu")
TEMP = re.compile(r"^\.(.+)\.(?:old-(\d+)|(\d+)-[a-z0-9_]{8})$")


def folder_problems(folder: Path) -> list[str]:
    """What makes ``folder`` an incomplete target folder (empty when it matches its manifest)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return [f"{folder.name}: no manifest.json"]
    try:
        outputs = json.loads(manifest.read_text())["outputs"]
    except (ValueError, KeyError) as e:
        return [f"{folder.name}: unreadable manifest ({e})"]
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    problems = [f"{folder.name}: {name} not in the manifest" for name in sorted(files - set(outputs))]
    problems += [f"{folder.name}: {name} missing" for name in sorted(set(outputs) - files)]
    for name in sorted(files & set(outputs)):
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != outputs[name]:
            problems.append(f"{folder.name}: {name} differs from its SHA-256 in the manifest")
    return problems


def temp_folders(out: Path) -> dict[str, int]:
    """Hidden temporary folders in ``out`` and the pid that owns each."""
    found = {}
    for p in out.iterdir() if out.is_dir() else []:
        m = TEMP.match(p.name)
        if m and p.is_dir():
            found[p.name] = int(m.group(2) or m.group(3))
    return found


@dataclass
class Round:
    """One compile run: when it was killed (None: ran to the end) and what OUT looked like."""

    kill_at: float | None  # seconds after its output stage began
    code: int = 0
    reached_output: bool = False  # it created a temporary folder: it held OUT's lock
    output_at: float | None = None  # seconds until its first temporary folder appeared
    duration: float = 0.0
    killed_mid_write: bool = False  # a temporary folder of its own existed when it was killed
    left: set[str] = field(default_factory=set)  # temporary folders present after it ended
    own_left: bool = False  # one of them is its own
    problems: list[str] = field(default_factory=list)


def compile_command(out: Path, eval_path: Path) -> list[str]:
    """The compile that every round runs."""
    targets = [a for t in TARGETS for a in ("-t", t)]
    return [sys.executable, "-m", "edgec", "compile", str(MODEL), *targets, "--calibration", str(CALIBRATION),
            "--eval", str(eval_path), "-o", str(out)]


def run_round(cmd: list[str], out: Path, kill_at: float | None, before: set[str]) -> Round:
    """Run ``cmd``, SIGKILL it ``kill_at`` seconds into its output stage (if given), and check OUT."""
    r = Round(kill_at=kill_at)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while proc.poll() is None:
        own = [n for n, pid in temp_folders(out).items() if pid == proc.pid]
        r.reached_output |= bool(own)
        if own and r.output_at is None:
            r.output_at = time.monotonic() - start
        if kill_at is not None and r.output_at is not None and time.monotonic() - start >= r.output_at + kill_at:
            r.killed_mid_write = bool(own)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    r.code = proc.wait()
    r.duration = time.monotonic() - start
    r.reached_output |= kill_at is None or r.code == 0
    r.left = set(temp_folders(out))
    r.own_left = any(pid == proc.pid for pid in temp_folders(out).values())
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        r.problems += folder_problems(folder)
    if r.reached_output:  # it held the lock: the earlier rounds' leftovers must be gone
        r.problems += [f"stale {name} survived a later run" for name in sorted(before & r.left)]
    return r


def main(argv: list[str] | None = None) -> int:
    """Run the kill rounds; print one summary line; exit 1 when any folder was incomplete."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: a fresh temporary one)")
    p.add_argument("--window", type=float, help="kill within this many seconds of the output stage "
                   "(default: measured by a first complete run)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "out"
        eval_path = Path(tmp) / "eval100.npz"
        data = np.load(EVAL)
        np.savez(eval_path, **{k: v[:100] for k, v in data.items()})
        cmd = compile_command(out, eval_path)
        rounds = []
        window = args.window
        if window is None:  # a complete run: its output stage's length; it also gives the kills folders to damage
            rounds.append(run_round(cmd, out, None, set()))
            window = rounds[0].duration - (rounds[0].output_at or 0)
        rng = random.Random(args.seed)
        for _ in range(args.kills):
            rounds.append(run_round(cmd, out, round(rng.uniform(0, window), 2), rounds[-1].left if rounds else set()))
        rounds.append(run_round(cmd, out, None, rounds[-1].left if rounds else set()))
    return report(rounds, window)


def report(rounds: list[Round], window: float) -> int:
    """Print the per-kill problems and the summary line; return the exit code."""
    kills = [r for r in rounds if r.kill_at is not None]
    last = rounds[-1]
    incomplete = sum(bool(r.problems) for r in rounds)
    for r in rounds:
        for problem in r.problems:
            print(f"kill at {r.kill_at} s: {problem}", file=sys.stderr)
    clean = last.code == 0 and not last.left and not last.problems
    killed = sum(r.code == -signal.SIGKILL for r in kills)
    print(f"kill_compile: {killed} SIGKILLs at 0-{window:.1f} s into the output stage of a compile of "
          f"{' + '.join(TARGETS)} ({sum(r.killed_mid_write for r in kills)} while a target folder was being written, "
          f"{sum(r.own_left for r in kills)} left a temporary folder); {incomplete} rounds with an incomplete final "
          f"folder or a surviving stale folder; final run exit {last.code}, {len(last.left)} temporary folders "
          f"left: {'OK' if clean and not incomplete else 'FAIL'}")
    return 0 if clean and not incomplete and all(r.code == 0 for r in rounds if r.kill_at is None) else 1

if __name__ == "__main__":
    sys.exit(main())
