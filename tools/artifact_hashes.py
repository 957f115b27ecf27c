"""SHA-256 of every artifact edgec writes for a fixed set of compiles: the byte-identity check.

A refactor that should not change behaviour (a package layout, a renamed helper) must leave every
artifact byte-identical. This tool compiles the digits example for every kind of target and the
MLPerf Tiny models for cortex-m4, collects the output files' SHA-256 from each ``manifest.json``
and writes them as one JSON; ``--compare OLD.json`` then names every file whose bytes changed.

    python tools/artifact_hashes.py -o before.json            # on the old commit
    python tools/artifact_hashes.py -o after.json --compare before.json

Report files (report.json/html, which hold timings and paths) are left out: they are not artifacts.
Hashes depend on the host's instruction set for OpenVINO (NNCF's bias correction runs in OpenVINO),
so compare runs from the same machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.corpus.sources import MLPERF  # noqa: E402
DIGITS = ["edgec/examples/digits_cnn.keras", "--calibration", "calibration/digits/calibration.npz",
          "--eval", "calibration/digits/eval.npz"]
NOT_ARTIFACTS = {"report.json", "report.html", "manifest.json"}


def cases(work: Path) -> dict[str, list[str]]:
    """Name -> ``edgec compile`` arguments (without ``-o``)."""
    out = {
        "digits-tflm": [*DIGITS, "-t", "cortex-m4", "-t", "cortex-m7", "-t", "android-arm64"],
        "digits-cpu": [*DIGITS, "-t", "intel-cpu", "-t", "onnx-cpu"],
        "digits-c": [*DIGITS, "-t", "cortex-m4", "--backend", "c"],
        "digits-compressed": [*DIGITS, "-t", "cortex-m4", "--prune", "0.5", "--clusters", "8"],
    }
    if MLPERF.is_dir():
        import numpy as np

        sys.path.insert(0, str(ROOT))
        from edgec.core.tf import keras
        from tools.photo_crops import stable_crops  # the suite's ResNet-8 calibration, as tests/conftest.py makes it

        model = keras().models.load_model(MLPERF / "pretrainedResnet.h5", compile=False)
        crops = work / "crops.npz"
        np.savez(crops, input_1=stable_crops(model, 1200, 0))
        ww = np.load(MLPERF / "str_ww_calibration_samples.npz")
        np.savez(work / "ww.npz", input_1=ww["specs"].astype(np.float32), label=ww["labels"])
        out["mlperf-kws"] = [str(MLPERF / "kws_ref_model"), "-t", "cortex-m4", "--calibration", "random"]
        out["mlperf-resnet8"] = [str(MLPERF / "pretrainedResnet.h5"), "-t", "cortex-m4", "--calibration", str(crops)]
        out["mlperf-ww"] = [str(MLPERF / "str_ww_ref_model.h5"), "-t", "cortex-m4", "--calibration",
                            str(work / "ww.npz")]
    return out


def hashes(out: Path) -> dict[str, str]:
    """``target/file`` -> SHA-256 of every artifact under one compile's output folder."""
    found = {}
    for manifest in sorted(out.glob("*/manifest.json")):
        files = json.loads(manifest.read_text()).get("outputs", {})
        for name, entry in sorted(files.items()):
            if Path(name).name not in NOT_ARTIFACTS:
                found[f"{manifest.parent.name}/{name}"] = entry["sha256"] if isinstance(entry, dict) else entry
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", required=True, help="JSON file to write")
    parser.add_argument("--compare", help="an earlier run's JSON: list the files whose bytes differ")
    parser.add_argument("--only", help="regex over case names")
    args = parser.parse_args()
    import re

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, argv in cases(work).items():
            if args.only and not re.search(args.only, name):
                continue
            out = work / name
            run = subprocess.run([sys.executable, "-m", "edgec", "compile", *argv, "-o", str(out)], cwd=ROOT,
                                 capture_output=True, text=True)
            result[name] = {"exit_code": run.returncode, "files": hashes(out)}
            print(f"{name}: exit {run.returncode}, {len(result[name]['files'])} files", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if not args.compare:
        return 0
    old = json.loads(Path(args.compare).read_text())
    differ = [f"{case}: {f}" for case in sorted(set(old) | set(result))
              for f in sorted(set(old.get(case, {}).get("files", {})) | set(result.get(case, {}).get("files", {})))
              if old.get(case, {}).get("files", {}).get(f) != result.get(case, {}).get("files", {}).get(f)]
    codes = [f"{case}: exit {old[case]['exit_code']} -> {result[case]['exit_code']}" for case in old
             if case in result and old[case]["exit_code"] != result[case]["exit_code"]]
    total = sum(len(v["files"]) for v in result.values())
    print(f"{total} files compared, {len(differ)} differ" + "".join(f"\n  {d}" for d in differ + codes))
    return 1 if differ or codes else 0


if __name__ == "__main__":
    sys.exit(main())
