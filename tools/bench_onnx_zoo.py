"""Compile real-world ONNX files with `edgec compile` and print a markdown table of the cells.

Two sets: ``zoo`` (the ``light_*`` models shipped inside the ``onnx`` wheel, 224x224, random-like
weights) and ``torch`` (``../shared/models/torch-onnx/``: eight models from both ``torch.onnx``
exporters). Each cell is one ``edgec compile MODEL -t TARGET`` in a fresh process, with its exit code,
its verification (cosine, top-1 agreement) and artifact size, or the first line of its error.

Calibration: crops of scikit-learn's two sample photos, resized and normalized with ImageNet mean and
std, for image inputs (NCHW with 1 or 3 channels); standard-normal samples (fixed seed) for the others
(keyword-spotting features, the anomaly-detection autoencoder's frames). The zoo and torch weights are
random, so top-1 is not meaningful; cosine to the float model is the number to read.

    .venv/bin/python tools/bench_onnx_zoo.py --set torch -t onnx-cpu -t cortex-m7 [--samples 24]
    .venv/bin/python tools/bench_onnx_zoo.py --set zoo -t onnx-cpu -t intel-cpu --samples 12 \
        --only squeezenet,resnet50,shufflenet,densenet121,inception_v2

Run it with ``PYTHONPATH`` pointing at another checkout to measure that checkout (e.g. before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.corpus.sources import SHARED  # noqa: E402

TORCH = SHARED / "torch-onnx"
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def zoo_models() -> list[Path]:
    """The light model-zoo ONNX files inside the installed onnx wheel."""
    import onnx

    return sorted((Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("light_*.onnx"))


def torch_models(folder: Path = TORCH) -> list[Path]:
    """The torch.onnx exports listed in ``folder``/models.json (../shared/models/torch-onnx/)."""
    return [folder / name for name in sorted(json.loads((folder / "models.json").read_text())["models"])]


def photo_batch(count: int, shape: tuple[int, ...], *, seed: int = 0) -> np.ndarray:
    """``count`` square photo crops as float32 NCHW, normalized with ImageNet mean/std (grey: channel 0)."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    channels, height, width = shape
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        img = images[i % len(images)]
        size = int(rng.integers(160, min(img.shape[:2]) + 1))
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        rows, cols = (np.arange(height) * size // height) + y, (np.arange(width) * size // width) + x
        crop = (img[rows][:, cols].astype(np.float64) / 255.0 - MEAN) / STD
        out.append(crop.transpose(2, 0, 1)[:channels])
    return np.stack(out).astype(np.float32)


def calibration(model: Path, count: int, folder: Path) -> Path:
    """An .npz of ``count`` samples for the model's single input (photos for images, else normal)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    value = next(v for v in graph.input if v.name not in initializers)
    shape = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)[1:]
    if len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 16:
        data = photo_batch(count, shape)
    else:
        data = np.random.default_rng(0).standard_normal((count, *shape)).astype(np.float32)
    path = folder / f"{model.stem}.{count}.npz"
    np.savez(path, **{value.name: data})
    return path


def cell(model: Path, target: str, data: Path, out: Path) -> dict:
    """One ``edgec compile`` run: exit code, seconds, and the report's verification or the error."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgec", "compile", str(model), "-t", target,
                           "--calibration", str(data), "-o", str(out)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          cwd=out.parent)  # not this checkout: PYTHONPATH alone says which edgec runs
    row = {"model": model.name, "target": target, "exit": proc.returncode,
           "seconds": round(time.perf_counter() - started, 1)}
    report = out / target / "report.json"
    if report.is_file():
        r = json.loads(report.read_text())
        v = r["verification"]
        row.update(cosine=v["cosine"], agreement=v["top1_agreement"], artifact_bytes=r["size"]["artifact_bytes"],
                   passed=v["passed"], failures=r.get("failures", []))
    lines = [x for x in proc.stderr.splitlines() if "error" in x.lower()]
    if proc.returncode not in (0,):
        row["error"] = (lines[-1] if lines else (proc.stderr.strip().splitlines() or ["?"])[-1])[:160]
    return row


def status(row: dict) -> str:
    """verified / the gate or error that stopped the cell."""
    if row["exit"] == 0:
        return "verified"
    return row.get("error") or "; ".join(row.get("failures", []))[:160] or f"exit {row['exit']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("zoo", "torch"), required=True)
    parser.add_argument("-t", "--target", action="append", required=True)
    parser.add_argument("--samples", type=int, default=24, help="calibration samples (a third held out)")
    parser.add_argument("--only", help="comma-separated substrings of the model file names to run")
    parser.add_argument("--torch-dir", type=Path, default=TORCH, help=f"torch-onnx folder (default {TORCH})")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    models = zoo_models() if args.set == "zoo" else torch_models(args.torch_dir)
    wanted = args.only.split(",") if args.only else [""]
    models = [m for m in models if any(w in m.name for w in wanted)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgec-onnx-zoo-") as tmp:
        for model in models:
            data = calibration(model, args.samples, Path(tmp))
            for target in args.target:
                rows.append(cell(model, target, data, Path(tmp) / model.stem))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("| model | target | exit | cosine | agreement | artifact bytes | s | status |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cos = f"{r['cosine']:.4f}" if r.get("cosine") is not None else "—"
        agree = f"{r['agreement']:.3f}" if r.get("agreement") is not None else "—"
        print(f"| {r['model']} | {r['target']} | {r['exit']} | {cos} | {agree} | {r.get('artifact_bytes', '—')} | "
              f"{r['seconds']} | {status(r)} |")
    passed = sum(r["exit"] == 0 for r in rows)
    print(f"\n{passed} of {len(rows)} cells verify")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
