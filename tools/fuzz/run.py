"""``make fuzz``: run every harness for a bounded time, seeded from the malformed-input corpus.

Seeds are the real source files of ``tools/corpus`` (the bundled model, MLPerf's ``.tflite`` files,
the small ONNX model, the calibration set, the shipped target profiles) plus every generated case
whose input file the harness reads. Crashes (inputs that made a loader raise anything but
InputError) land in ``build/fuzz/<harness>/crashes/``; each becomes a case in ``tools/corpus``.

    python tools/fuzz/run.py --seconds 180 [--only tflite,onnx]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# harness -> (file names of corpus inputs it reads, extra seed files)
HARNESSES = {
    "keras_config": ((".keras",), ["edgec/examples/digits_cnn.keras"]),
    "onnx": ((".onnx",), []),
    "tflite": ((".tflite",), ["{mlperf}/kws_ref_model.tflite", "{mlperf}/str_ww_ref_model.tflite"]),
    "calibration": ((".npz", ".npy", ".csv"), ["calibration/digits/calibration.npz"]),
    "config": ((".toml",), ["targets/cortex-m4.toml", "targets/onnx-cpu.toml"]),
}
# The first byte of a calibration or config input picks the form (see the harnesses).
PREFIX = {"calibration": {".npz": b"\0", ".npy": b"\1", ".csv": b"\2"}, "config": {".toml": b"\0"}}


def seeds(name: str, folder: Path) -> int:
    """Write ``name``'s seeds into ``folder``: its source files, then the corpus cases' inputs."""
    from tools.corpus import all_cases
    from tools.corpus.sources import MLPERF

    suffixes, extra = HARNESSES[name]
    folder.mkdir(parents=True, exist_ok=True)
    files = [ROOT / p if "{" not in p else Path(p.format(mlperf=MLPERF)) for p in extra]
    if name == "tflite":
        from tools.corpus.tflite_cases import cases as tflite_cases

        for case_name, make in tflite_cases():
            (folder / f"{case_name}.tflite").write_bytes(make())
    if name == "onnx":
        from tools.corpus.onnx_cases import small_cnn

        (folder / "small_cnn.onnx").write_bytes(small_cnn().SerializeToString())
    with tempfile.TemporaryDirectory() as tmp:
        for case in all_cases():
            try:
                case.generate(Path(tmp) / case.name)
            except OSError:  # a case needing what this host lacks (mkfifo) is no seed anyway
                continue
        files += [p for p in Path(tmp).rglob("*") if p.suffix in suffixes and p.is_file()
                  and not p.is_symlink() and p.stat().st_size < 1 << 20]
        for i, path in enumerate(files):
            prefix = PREFIX.get(name, {}).get(path.suffix, b"")
            (folder / f"seed-{i:04d}{path.suffix}").write_bytes(prefix + path.read_bytes())
    return len(files)


def fuzz(name: str, seconds: int, out: Path) -> int:
    """Run one harness for ``seconds``; return the number of crash files it left."""
    work = out / name
    corpus, crashes = work / "corpus", work / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    count = seeds(name, work / "seeds")
    print(f"fuzz {name}: {count} seeds, {seconds} s", flush=True)
    cmd = [sys.executable, str(ROOT / "tools" / "fuzz" / f"fuzz_{name}.py"), str(corpus), str(work / "seeds"),
           f"-max_total_time={seconds}", "-rss_limit_mb=3072", "-timeout=30", "-max_len=262144",
           f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
    corpus.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, env=env, cwd=work, check=False)
    found = sorted(p.name for p in crashes.iterdir())
    print(f"fuzz {name}: {len(found)} crash file(s) {found}", flush=True)
    return len(found)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=180, help="fuzzing time per harness")
    p.add_argument("--only", help="comma-separated harness names (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "fuzz")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(HARNESSES)
    total = sum(fuzz(name, args.seconds, args.out) for name in names)
    print(f"fuzz: {total} crash file(s) in {args.out}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
