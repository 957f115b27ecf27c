"""SIGKILL a multi-target `edgec compile` at seeded random points; check OUT after every kill.

Each round starts the same compile (the digits example for cortex-m4 + onnx-cpu, 100 eval samples)
as a subprocess and kills it with SIGKILL at a seeded random point of its output stage: as soon as
its temporary target folders (``.TARGET.PID-xxxxxxxx``) hold N files in all, N drawn uniformly from
1 to the number of files a complete run writes (counted by a first complete run, unless --files
gives it). A point in the sequence of written files, not a delay, keeps the kills spread over the
output stage whatever the machine's load (before that stage nothing is written to OUT); a round
that ends before its point is seen is not counted, and another point is drawn. After each kill, every final target
folder in OUT must be complete: manifest.json lists every file, and every file's SHA-256 matches
it. Temporary folders a killed round leaves behind must be gone once the next round has reached
the output stage (it removes them under OUT's lock). A last round runs to the end and must leave
complete folders and no temporary folder at all.

    .venv/bin/python tools/kill_compile.py --kills 20 [--seed 0] [--files N] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
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

    kill_after: int | None  # files written into its temporary folders
    code: int = 0
    reached_output: bool = False  # it created a temporary folder: it held OUT's lock
    written: dict[str, int] = field(default_factory=dict)  # files seen in each of its temporary folders
    killed_mid_write: bool = False  # a temporary folder of its own existed when it was killed
    left: set[str] = field(default_factory=set)  # temporary folders present after it ended
    own_left: bool = False  # one of them is its own
    problems: list[str] = field(default_factory=list)


def compile_command(out: Path, eval_path: Path) -> list[str]:
    """The compile that every round runs."""
    targets = [a for t in TARGETS for a in ("-t", t)]
    return [sys.executable, "-m", "edgec", "compile", str(MODEL), *targets, "--calibration", str(CALIBRATION),
            "--eval", str(eval_path), "-o", str(out)]


def _count(folder: Path) -> int:
    try:
        return sum(1 for p in folder.rglob("*") if p.is_file())
    except OSError:  # renamed or removed while counted
        return 0


def run_round(cmd: list[str], out: Path, kill_after: int | None, before: set[str]) -> Round:
    """Run ``cmd``, SIGKILL it once ``kill_after`` files are in its temporary folders (if given), check OUT."""
    r = Round(kill_after=kill_after)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        own = [n for n, pid in temp_folders(out).items() if pid == proc.pid]
        for name in own:
            r.written[name] = max(r.written.get(name, 0), _count(out / name))
        r.reached_output |= bool(own)
        if kill_after is not None and sum(r.written.values()) >= kill_after:
            r.killed_mid_write = bool(own)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    r.code = proc.wait()
    r.reached_output |= kill_after is None or r.code == 0
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
    p.add_argument("--files", type=int, help="files a complete run writes (default: counted by a first run)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "out"
        eval_path = Path(tmp) / "eval100.npz"
        data = np.load(EVAL)
        np.savez(eval_path, **{k: v[:100] for k, v in data.items()})
        cmd = compile_command(out, eval_path)
        rounds = []
        files = args.files
        if files is None:  # a complete run counts them; it also gives the kills folders to damage
            rounds.append(run_round(cmd, out, None, set()))
            files = sum(_count(out / t) for t in TARGETS)
        rng = random.Random(args.seed)
        points = [rng.randint(1, files) for _ in range(args.kills)]
        while points and len(rounds) < 3 * args.kills + 1:
            r = run_round(cmd, out, points[0], rounds[-1].left if rounds else set())
            rounds.append(r)
            if r.code == -signal.SIGKILL:
                points.pop(0)
            else:  # it ended before its point was seen (the last files and the rename are quick): another
                points[0] = rng.randint(1, files)
        rounds.append(run_round(cmd, out, None, rounds[-1].left if rounds else set()))
    return report(rounds, files)


def report(rounds: list[Round], files: int) -> int:
    """Print the per-kill problems and the summary line; return the exit code."""
    kills = [r for r in rounds if r.code == -signal.SIGKILL]
    last = rounds[-1]
    incomplete = sum(bool(r.problems) for r in rounds)
    for r in rounds:
        for problem in r.problems:
            print(f"kill after {r.kill_after} files: {problem}", file=sys.stderr)
    clean = last.code == 0 and not last.left and not last.problems
    points = sorted(r.kill_after for r in kills)
    print(f"kill_compile: {len(kills)} SIGKILLs in the output stage of a compile of {' + '.join(TARGETS)}, after "
          f"{', '.join(map(str, points))} of its {files} files ({sum(r.killed_mid_write for r in kills)} while a "
          f"target folder was being written, {sum(r.own_left for r in kills)} left a temporary folder); "
          f"{incomplete} rounds with an incomplete final folder or a surviving stale folder; final run exit "
          f"{last.code}, {len(last.left)} temporary folders left: {'OK' if clean and not incomplete else 'FAIL'}")
    complete_runs_ok = all(r.code == 0 for r in rounds if r.kill_after is None)
    return 0 if clean and not incomplete and complete_runs_ok else 1

if __name__ == "__main__":
    sys.exit(main())
