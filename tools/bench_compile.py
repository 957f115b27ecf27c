"""Compile the digits example and the MLPerf Tiny models for cortex-m4; print a markdown table.

Sizes against MLPerf's own int8 references, arenas against the ideal peak activation memory quoted in
../shared/models/mlperf-tiny/README.md, and fidelity measured in the TFLite Micro interpreter.
ResNet-8 is calibrated on real CIFAR-10 training images and evaluated on labelled CIFAR-10 test images
(tools/cifar10.py); KWS has no data here (random calibration, fidelity only).

    .venv/bin/python tools/bench_compile.py [--out build/bench-compile]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.corpus.sources import MLPERF  # noqa: E402

from tools.cifar10 import load as cifar10  # noqa: E402

CIFAR_CALIBRATION = 500  # first images of CIFAR-10's first training batch
CIFAR_EVAL = 1000  # first images of the CIFAR-10 test batch, with their labels


def _cases(tmp: Path) -> list[tuple[str, Path, str, str | None, int | None, int | None]]:
    ww = np.load(MLPERF / "str_ww_calibration_samples.npz")
    np.savez(tmp / "ww.npz", input_1=ww["specs"].astype(np.float32), label=ww["labels"])
    x, _ = cifar10("train")
    np.savez(tmp / "cifar10_train.npz", input_1=x[:CIFAR_CALIBRATION])
    x, y = cifar10("test")
    np.savez(tmp / "cifar10_test.npz", input_1=x[:CIFAR_EVAL], label=y[:CIFAR_EVAL])
    return [
        ("digits CNN", ROOT / "edgec/examples/digits_cnn.keras", str(ROOT / "calibration/digits/calibration.npz"),
         str(ROOT / "calibration/digits/eval.npz"), None, None),
        ("MLPerf KWS DS-CNN", MLPERF / "kws_ref_model", "random", None, 53936, 16000),
        ("MLPerf ResNet-8", MLPERF / "pretrainedResnet.h5", str(tmp / "cifar10_train.npz"),
         str(tmp / "cifar10_test.npz"), 98496, 49152),
        ("MLPerf wake word", MLPERF / "str_ww_ref_model.h5", str(tmp / "ww.npz"), None, 74520, None),
    ]


def main() -> None:
    from edgec.pipeline import compile as run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "build" / "bench-compile"))
    args = parser.parse_args()
    rows = ["| model | calibration | float .tflite B | int8 B | MLPerf int8 B | arena total (host) B | of which activations (head) B | ideal peak B | "
            "float top-1 | int8 top-1 | agreement |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, calib, eval_, ref_bytes, ideal in _cases(Path(tmp)):
            out = Path(args.out) / name.replace(" ", "_")
            report = run(model, ["cortex-m4"], calibration=calib, eval=eval_, out=out)["cortex-m4"]
            size, mem, ver = report["size"], report["memory"], report["verification"]
            pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
            rows.append(f"| {name} | {Path(calib).name} | {size['float_tflite_bytes']:,} | {size['artifact_bytes']:,} | "
                        f"{ref_bytes or '—'} | {mem['arena_measured_host_bytes']:,} | {mem['arena_head_bytes']:,} | {ideal or '—'} | "
                        f"{pct(ver['reference_top1'])} | {pct(ver['artifact_top1'])} | {pct(ver['top1_agreement'])} |")
    print("\n".join(rows))
    Path(args.out, "bench_compile.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
