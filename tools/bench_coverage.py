"""Coverage benchmark: the models users bring x the targets they ship to, one `edgec compile` per cell.

Each cell is one real `edgec compile MODEL -t TARGET` in its own process (a native abort in one cell
cannot take the others down), classified from its exit code, its one-line error and its report.json:

- ``verified``: exit 0, the artifact passed verification in the target's runtime;
- ``refused``: exit 2 (bad input, an operator the target cannot run, ...) or exit 1 on a flash/RAM
  budget (the model does not fit the target): the reason is the cell;
- ``failed``: exit 1 on a verification threshold, exit 3 (a toolchain failed);
- ``crash``: killed by a signal, a traceback, any other exit code, or the per-cell time limit.

Models:

- ``keras.applications`` built in code, in tf_keras (saved ``.h5``) and in Keras 3 (saved ``.keras``),
  at 96x96x3 with 10 classes, with **seeded random weights and batch-norm statistics estimated from
  real images**: one training-mode pass (momentum 0) over ``BN_IMAGES`` (256) crops of scikit-learn's
  sample photos, normalized as the family expects, sets every moving mean and variance to that batch's
  (with the initial statistics a random network's activations grow or vanish layer by layer and its
  output is the same for every input). Their batch-norm betas are seeded in [1, 2]: with beta 0 a
  random BN-ReLU network is chaotic (a perturbation, int8 rounding included, grows 1.47x in power per
  layer; MobileNet-0.25's int8 SNR fell from 37 dB after the stem to 2 dB at the last layer, each
  layer's own error plain rounding, and no random-weight row verified); with them the gain is 1.02 to
  1.12 per layer. No training: seconds per model. A random head's top-1 means
  nothing, so their recipe sets ``output_kind = "regression"``: they are judged by SNR and cosine with
  the target's thresholds (``min_snr_db``, ``min_cosine``). Cached in ``OUT/models/``;
- the ``onnx`` wheel's light model zoo (``onnx/backend/test/data/light``), random/constant weights;
- MLPerf Tiny's KWS, ResNet-8 and wake word (../shared/models/mlperf-tiny), the trained references,
  and its anomaly-detection autoencoder (640 in, 640 out) built in code with seeded weights by
  ``tools/mlperf_tiny_models.py``, judged as a regression (SNR, cosine);
- the PyTorch exports of ../shared/models/torch-onnx (both exporters), random weights.

Calibration and held-out samples: for MLPerf's ResNet-8 (trained on CIFAR-10), CIFAR-10 images
(calibration: training-batch images from 4,000 on; evaluation: 64 of the test batch, with their labels,
so top-1 is meaningful); for the other image models, crops of scikit-learn's two sample photos (real
images; calibration, evaluation and the batch-norm pass use different crops), normalized per family;
audio-like and vector inputs get seeded normal noise (no data set here), the wake word its MLPerf
calibration set.

A verified cell is marked **weak** in the table when its float output is the same for every held-out
sample (agreement with it proves nothing) or its input-dependent SNR is under ``WEAK_SNR_DB`` (10 dB:
the int8 error is over a third of the part of the output that depends on the input).

    .venv/bin/python tools/bench_coverage.py [--models REGEX] [--targets cortex-m7 onnx-cpu]
        [--out build/coverage] [--timeout 1500] [--force]

A re-run keeps the cells already in ``OUT/coverage.json`` and runs only the missing ones (``--force``
re-runs the selected cells), so model groups can be run separately, or a killed run resumed.

Writes ``OUT/coverage.json`` (every cell: status, reason, exit code, seconds, key numbers) and
``OUT/coverage.md`` (the README table), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools.cifar10
# The team's shared models (beside the main checkout; a worktree elsewhere sets EDGEC_SHARED_MODELS).
from tools.corpus.sources import MLPERF, SHARED  # noqa: E402
TARGETS = ("cortex-m7", "android-arm64", "intel-cpu", "onnx-cpu")
CALIBRATION_SAMPLES = 48
EVAL_SAMPLES = 32
CIFAR_EVAL_SAMPLES = 64  # labelled: top-1 over 64 images resolves an agreement gate of 0.95
CIFAR_CAL_START = 4000  # MLPerf ResNet-8's calibration images: CIFAR-10 training images from here on
BN_IMAGES = 256  # photo crops whose batch statistics become a random-weight model's batch-norm statistics
RANDOM_BN = "random weights, batch norm from photos"

# name -> (keras.applications class, constructor kwargs, how its input is scaled)
KERAS_APPS = {
    "MobileNet-0.25": ("MobileNet", {"alpha": 0.25}, "pm1"),
    "MobileNetV2-0.35": ("MobileNetV2", {"alpha": 0.35}, "pm1"),
    "MobileNetV3Small": ("MobileNetV3Small", {"minimalistic": False}, "255"),
    "MobileNetV3Large": ("MobileNetV3Large", {}, "255"),
    "EfficientNetB0": ("EfficientNetB0", {}, "255"),
    "ResNet50": ("ResNet50", {}, "pm1"),
    "DenseNet121": ("DenseNet121", {}, "pm1"),
    "NASNetMobile": ("NASNetMobile", {}, "pm1"),
}
APP_SIZE = 96

# Runs in a child process: build one model with seeded random weights and save it. keras.applications
# models (the same code serves tf_keras and Keras 3, TensorFlow backend) get their batch-norm statistics
# from one training-mode pass over real photo crops with momentum 0, so that every layer's activations are
# normalized and the output follows the input; no training. "ad" is MLPerf Tiny's anomaly-detection
# autoencoder from tools/mlperf_tiny_models.py (tf_keras, its own seeded batch-norm statistics).
_BUILD_APP = r"""
import json, os, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
if spec["keras"] == "tf_keras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras
else:
    import keras
keras.utils.set_random_seed(0)
start = time.monotonic()
if spec["cls"] == "ad":
    sys.path.insert(0, spec["root"])
    from tools.mlperf_tiny_models import ad_model
    model = ad_model(0)
else:
    cls = getattr(keras.applications, spec["cls"])
    model = cls(input_shape=(spec["size"], spec["size"], 3), weights=None, classes=10, **spec["kwargs"])
    # Random weights with the initial statistics (mean 0, variance 1) leave activations unnormalized:
    # they grow or vanish layer by layer until the output is the same for every input. One training-mode
    # pass with momentum 0 sets every moving mean and variance to the batch's, as batch-norm
    # recalibration does.
    x = np.load(spec["bn"])
    bns = [l for l in model.layers if type(l).__name__ == "BatchNormalization"]
    # With beta 0 each normalized ReLU sees zero-mean unit-variance input: it passes half of a perturbation's
    # power (E[relu'^2] = 1/2) but only 0.34 of signal variance survives (the next batch norm removes the
    # ReLU output's mean), so any perturbation, int8 rounding included, grows 1/(2 * 0.34) = 1.47x in power
    # (1.7 dB) per layer: a random BN-ReLU network is chaotic (measured: MobileNet-0.25's int8 SNR falls
    # 1.1-1.7 dB per layer, 37 dB after the stem to 2 dB at the last layer, every layer's own error plain
    # rounding). Trained networks are not. Seeded betas in [1, 2] put 84-98% of each ReLU's inputs in its
    # linear part: a gain of 1.02-1.12 per layer, and the output still follows the input.
    rng = np.random.default_rng(0)
    for layer in bns:
        if layer.center:
            layer.beta.assign(rng.uniform(1.0, 2.0, tuple(layer.beta.shape)).astype(np.float32))
    momenta = [l.momentum for l in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(bns, momenta):
        layer.momentum = momentum
tmp = spec["path"] + ".tmp" + os.path.splitext(spec["path"])[1]
model.save(tmp)
os.replace(tmp, spec["path"])  # whole files only: a killed build leaves none
print(json.dumps({"params": int(model.count_params()), "build_seconds": round(time.monotonic() - start, 1)}))
"""


@dataclass
class Case:
    """One model row of the matrix: its file, input layout and the samples it is fed."""

    name: str
    family: str
    path: Path | None  # None: built by `make`
    input_shape: tuple[int, ...]  # without batch
    scale: str  # pm1 | 255 | imagenet | noise | ww | random
    make: tuple | None = None  # (keras flavour, app name or "ad") for models built in code
    cifar: bool = False  # fed held-out CIFAR-10 images (with labels) instead of photo crops
    kind: str | None = None  # the recipe's output_kind; None: edgec infers it from the output


def photos(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` square crops of scikit-learn's sample photos, antialiased to ``size``, uint8 NHWC in 0..255."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = images[rng.integers(len(images))]
        side = int(rng.integers(min(size, 96), min(img.shape[:2]) + 1))
        y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        crop = Image.fromarray(img[y:y + side, x:x + side]).resize((size, size), Image.LANCZOS)
        out[i] = np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop)
    return out


def cifar(split: str, start: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images ``start:start+n`` of ``split``, bilinearly upscaled to ``size``: (uint8 NHWC, labels)."""
    from PIL import Image

    from tools.cifar10 import load

    x, y = load(split)
    x, y = x[start:start + n].astype(np.uint8), y[start:start + n]
    if size != x.shape[1]:
        x = np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)) for img in x])
    return x, y


def normalize(x: np.ndarray, scale: str) -> np.ndarray:
    """uint8 pixels as float32 in the range the family expects (``pm1``: -1..1, ``255``: 0..255)."""
    x = x.astype(np.float32)
    return x / 127.5 - 1.0 if scale == "pm1" else x


def samples(case: Case, n: int, seed: int) -> np.ndarray:
    """Inputs for ``case``: real photo crops normalized as the family expects, or seeded noise."""
    shape = case.input_shape
    if case.scale == "noise":
        return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
    nchw = shape[0] == 3 and shape[-1] != 3
    size = shape[-1] if nchw else shape[0]
    x = photos(n, size, seed).astype(np.float32)
    if case.scale == "pm1":
        x = normalize(x, "pm1")
    elif case.scale == "imagenet":
        x = (x / 255.0 - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x


def onnx_input_shape(path: Path) -> tuple[int, ...]:
    """The (first) graph input's shape without its batch dimension."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in inits)
    return tuple(d.dim_value for d in first.type.tensor_type.shape.dim[1:])


def cases(work: Path) -> list[Case]:
    """Every model row, in table order (generated models are built later, on demand)."""
    import onnx

    rows = []
    for flavour, ext in (("tf_keras", "h5"), ("keras3", "keras")):
        for name, (_, _, scale) in KERAS_APPS.items():
            # A random head's top-1 means nothing: judged by SNR and cosine (the target's thresholds).
            rows.append(Case(f"{name} ({flavour}, {RANDOM_BN})", f"keras.applications, {flavour}",
                             work / "models" / f"{name}.{flavour}.random-bn{BN_IMAGES}.{ext}",
                             (APP_SIZE, APP_SIZE, 3), scale, make=(flavour, name), kind="regression"))
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    for path in sorted(light.glob("*.onnx")):
        rows.append(Case(path.stem.removeprefix("light_"), "onnx light zoo", path, onnx_input_shape(path),
                         "imagenet"))
    mlperf = MLPERF
    rows += [Case("MLPerf KWS", "MLPerf Tiny", mlperf / "kws_ref_model", (49, 10, 1), "noise"),
             Case("MLPerf ResNet-8", "MLPerf Tiny", mlperf / "pretrainedResnet.h5", (32, 32, 3), "255", cifar=True),
             Case("MLPerf wake word", "MLPerf Tiny", mlperf / "str_ww_ref_model.h5", (), "ww"),
             # A reconstruction (640 in, 640 out): SNR and cosine, never top-1.
             Case("MLPerf anomaly detection (seeded weights)", "MLPerf Tiny", work / "models" / "mlperf_ad.h5",
                  (640,), "noise", make=("tf_keras", "ad"), kind="regression")]
    for path in sorted((SHARED / "torch-onnx").glob("*.onnx")):
        shape = onnx_input_shape(path)
        scale = "imagenet" if len(shape) == 3 and shape[0] == 3 else "noise"
        rows.append(Case(path.name.removesuffix(".onnx"), "PyTorch torch.onnx", path, shape, scale))
    return rows


def build_app(case: Case, work: Path) -> str | None:
    """Write a model built in code with seeded weights (cached: built once). None when done, else why not."""
    if case.path.exists():
        return None
    flavour, name = case.make
    case.path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"keras": flavour, "cls": name, "root": str(ROOT), "path": str(case.path)}
    if name in KERAS_APPS:
        cls, kwargs, _ = KERAS_APPS[name]
        bn = work / "models" / f"bn_photos_{case.scale}_{APP_SIZE}_{BN_IMAGES}.npy"
        if not bn.exists():
            np.save(bn, normalize(photos(BN_IMAGES, APP_SIZE, seed=2), case.scale))
        spec.update(cls=cls, kwargs=kwargs, size=APP_SIZE, bn=str(bn))
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, "-c", _BUILD_APP, json.dumps(spec)], capture_output=True, text=True,
                          env=env, timeout=900)
    if done.returncode != 0:
        lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
        return f"model not built: {lines[-1] if lines else done.returncode}"
    print(f"{case.name}: built, {done.stdout.strip().splitlines()[-1]}", flush=True)
    return None


def data_files(case: Case, work: Path) -> tuple[str, str]:
    """(calibration, eval) arguments for ``case``: .npy files of samples (or the MLPerf sets)."""
    if case.scale == "ww":
        # MLPerf ships 45 labelled spectrograms, sorted by class: 5 of every 9 calibrate, the other 4 are
        # held out with their labels, so both sets cover every class (taking CALIBRATION_SAMPLES for
        # calibration left the evaluation set empty).
        ww = np.load(MLPERF / "str_ww_calibration_samples.npz")
        x, y = ww["specs"].astype(np.float32), ww["labels"].astype(np.int64)
        held_out = np.arange(len(x)) % 9 >= 5
        folder = work / "data"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ww_cal.npy", x[~held_out])
        np.savez(folder / "ww_eval.npz", x=x[held_out], label=y[held_out])
        return str(folder / "ww_cal.npy"), str(folder / "ww_eval.npz")
    key = re.sub(r"[^A-Za-z0-9]+", "_", f"{case.scale}_{'x'.join(map(str, case.input_shape))}")
    if case.cifar:  # calibration from the training batch, evaluation from the test batch (with labels)
        cal, ev = work / "data" / f"cifar10_{key}_cal{CIFAR_CAL_START}.npy", work / "data" / f"cifar10_{key}_eval.npz"
        if not (cal.exists() and ev.exists()):
            cal.parent.mkdir(parents=True, exist_ok=True)
            size = case.input_shape[0]
            np.save(cal, normalize(cifar("train", CIFAR_CAL_START, CALIBRATION_SAMPLES, size)[0], case.scale))
            x, y = cifar("test", 0, CIFAR_EVAL_SAMPLES, size)
            np.savez(ev, x=normalize(x, case.scale), label=y)
        return str(cal), str(ev)
    cal, ev = work / "data" / f"{key}_cal.npy", work / "data" / f"{key}_eval.npy"
    if not cal.exists():
        cal.parent.mkdir(parents=True, exist_ok=True)
        np.save(cal, samples(case, CALIBRATION_SAMPLES, seed=0))
        np.save(ev, samples(case, EVAL_SAMPLES, seed=1))
    return str(cal), str(ev)


def numbers(report: dict | None) -> dict:
    """The numbers of a cell worth a glance, from its report.json (empty without one)."""
    if not report:
        return {}
    ver = report.get("verification", {})
    out = {"flash_bytes": report.get("size", {}).get("flash_bytes"),
           "metrics": {k: ver.get(k) for k in ("top1_agreement", "cosine", "snr_db", "input_dependent_snr_db",
                                               "max_abs_err", "reference_top1", "artifact_top1", "output_kind")
                       if ver.get(k) is not None}}
    if ver.get("warnings"):  # e.g. the float output is the same for every sample: agreement proves little
        out["warnings"] = ver["warnings"]
    return out


def report_path(work: Path, name: str, target: str) -> Path:
    """Where the compile of one cell leaves its report.json."""
    return work / "out" / re.sub(r"[^A-Za-z0-9.]+", "_", name) / target / "report.json"


def classify(code: int, stderr: str, report: dict | None, seconds: float, timed_out: bool) -> dict:
    """One cell: status, reason and the numbers worth a glance, from what the compile left."""
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    error = next((l for l in reversed(lines) if l.startswith("edgec: error:")), lines[-1] if lines else "")
    cell = {"exit": code, "seconds": round(seconds, 1), **numbers(report)}
    if timed_out:
        last = f" (last on stderr: {lines[-1][:200]})" if lines else ""
        return {**cell, "status": "crash", "reason": f"no result within {seconds:.0f} s{last}"}
    if "Traceback (most recent call last)" in stderr:
        return {**cell, "status": "crash", "reason": "traceback: " + (lines[-1] if lines else "")}
    if code == 0:
        return {**cell, "status": "verified", "reason": ""}
    reason = error.removeprefix("edgec: error:").strip()
    if code == 1:
        failures = (report or {}).get("failures", [])
        if failures and all("budget" in f for f in failures):
            return {**cell, "status": "refused", "reason": "over budget: " + "; ".join(failures)}
        if not report and reason.startswith("[budget"):  # refused before quantizing (edgec/flash_bound.py)
            return {**cell, "status": "refused", "reason": "over budget: " + reason}
        return {**cell, "status": "failed", "reason": "; ".join(failures) or reason}
    if code == 2:
        return {**cell, "status": "refused", "reason": reason}
    if code == 3:
        return {**cell, "status": "failed", "reason": reason}
    return {**cell, "status": "crash", "reason": f"exit {code}: {reason}"}


def run_cell(case: Case, target: str, work: Path, timeout: float) -> dict:
    """Compile ``case`` for ``target`` in a child process and classify the result."""
    out = report_path(work, case.name, target).parent.parent
    cal, ev = data_files(case, work)
    cmd = [sys.executable, "-m", "edgec", "compile", str(case.path), "-t", target, "--calibration", cal,
           "--eval", ev, "-o", str(out)]
    if case.kind:
        recipe = work / "recipes" / f"output_kind_{case.kind}.toml"
        recipe.parent.mkdir(parents=True, exist_ok=True)
        recipe.write_text(f'output_kind = "{case.kind}"\n')
        cmd += ["--recipe", str(recipe)]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        code, stderr, timed_out = done.returncode, done.stderr, False
    except subprocess.TimeoutExpired as e:
        code, stderr, timed_out = -9, (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) \
            else (e.stderr or ""), True
    seconds = time.monotonic() - start
    path = report_path(work, case.name, target)
    report = json.loads(path.read_text()) if path.exists() else None
    return classify(code, stderr, report, seconds, timed_out)


WEAK_SNR_DB = 10.0  # input-dependent SNR below this: the int8 error is over a third of what the output computes


def weak(cell: dict) -> str | None:
    """Why a verified cell proves little (its float output is the same for every sample, or the int8
    error is large next to the part of the output that depends on the input), else None."""
    if cell["status"] != "verified":
        return None
    if cell.get("warnings"):
        return "float output constant over the samples"
    dependent = (cell.get("metrics") or {}).get("input_dependent_snr_db")
    if dependent is not None and dependent < WEAK_SNR_DB:
        shown = f"{dependent:.0f}" if round(dependent) < WEAK_SNR_DB else f"{dependent:.1f}"  # 9.6 is not "10 < 10"
        return f"input-dependent SNR {shown} dB < {WEAK_SNR_DB:.0f} dB"
    return None


def short(cell: dict) -> str:
    """A table cell: the verdict and, for anything but a pass, its reason cut to one clause."""
    if cell["status"] == "verified":
        m = cell.get("metrics", {})
        bits = [f"agreement {m['top1_agreement']:.3f}" if "top1_agreement" in m else None,
                f"top-1 {m['reference_top1']:.3f} -> {m['artifact_top1']:.3f}" if "artifact_top1" in m else None,
                f"SNR {m['snr_db']:.0f} dB" if "snr_db" in m else None,
                f"input-dependent SNR {m['input_dependent_snr_db']:.0f} dB" if "input_dependent_snr_db" in m else None,
                f"cos {m['cosine']:.3f}" if "cosine" in m else None]
        why = weak(cell)
        head = f"verified, weak: {why}" if why else "verified"
        return head + (f" ({', '.join(b for b in bits if b)})" if any(bits) else "")
    reason = cell["reason"].replace("|", "/")
    return f"{cell['status']}: {reason[:110]}{'...' if len(reason) > 110 else ''}"


def markdown(results: dict, targets: list[str]) -> str:
    """The coverage table and its totals."""
    rows = ["| model | family | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets)]
    for name, entry in results.items():
        rows.append(f"| {name} | {entry['family']} | " + " | ".join(
            short(entry["cells"][t]) if t in entry["cells"] else "not run" for t in targets) + " |")
    cells = [c for e in results.values() for c in e["cells"].values()]
    count = {s: sum(c["status"] == s for c in cells) for s in ("verified", "refused", "failed", "crash")}
    fitting = [c for c in cells if not c["reason"].startswith("over budget")]
    rate = count["verified"] / len(fitting) if fitting else 0.0
    rows.append("")
    rows.append(f"{len(cells)} cells: {count['verified']} verified, {count['refused']} refused, "
                f"{count['failed']} failed, {count['crash']} crashed; {100 * rate:.0f}% of the "
                f"{len(fitting)} cells that fit their target's budget compile and verify.")
    constant = sum(c["status"] == "verified" and bool(c.get("warnings")) for c in cells)
    low = sum(bool(weak(c)) and not c.get("warnings") for c in cells)
    rows.append(f"Of the verified cells, {constant + low} are weak: {constant} have a float output that is the same "
                f"for every held-out sample, and {low} an input-dependent SNR under {WEAK_SNR_DB:.0f} dB (the int8 "
                "error is over a third of what the output computes from its input).")
    codes: dict[str, int] = {}
    for c in cells:
        codes[c.get("code", "unrecorded")] = codes.get(c.get("code", "unrecorded"), 0) + 1
    rows.append("Code the cells ran on: " + ", ".join(f"{k} ({v} cell{'s' if v != 1 else ''})"
                                                      for k, v in sorted(codes.items())) + ".")
    return "\n".join(rows)


def code_version() -> str:
    """The commit the cells run on (``-dirty`` with uncommitted changes), recorded per cell so that a
    table merged from slices says which code each cell ran; ``unknown`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=7", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no", "edgec") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "build" / "coverage"))
    parser.add_argument("--models", default=".", help="regular expression on the model names")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per cell")
    parser.add_argument("--merge", nargs="*", default=[], metavar="DIR",
                        help="fold the cells of other runs' DIR/coverage.json into OUT's (a matrix run in parallel "
                             "slices); OUT's own cells win")
    parser.add_argument("--force", action="store_true",
                        help="re-run cells already in OUT/coverage.json (by default they are kept: a killed or "
                             "sliced run resumes where it stopped)")
    args = parser.parse_args()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "coverage.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for other in args.merge:
        for name, entry in json.loads((Path(other) / "coverage.json").read_text()).items():
            for target, cell in entry["cells"].items():  # numbers as the latest report.json has them
                path = report_path(Path(other), name, target)
                if path.exists() and cell.get("exit") is not None:
                    cell.update(numbers(json.loads(path.read_text())))
            mine = results.setdefault(name, {"family": entry["family"], "cells": {}})
            mine["cells"] = {**entry["cells"], **mine["cells"]}
    version = code_version()
    for case in cases(work):
        if not re.search(args.models, case.name):
            continue
        if not case.make and not case.path.exists():  # a setup problem, not a cell: say so, record nothing
            print(f"{case.name}: skipped, {case.path} not found (set EDGEC_SHARED_MODELS / EDGEC_MLPERF_MODELS)",
                  file=sys.stderr)
            continue
        entry = results.setdefault(case.name, {"family": case.family, "cells": {}})
        todo = [t for t in args.targets if args.force or t not in entry["cells"]]
        if not todo:
            continue
        why = build_app(case, work) if case.make else None
        for target in todo:
            cell = ({"status": "failed", "reason": why, "exit": None, "seconds": 0.0} if why
                    else run_cell(case, target, work, args.timeout))
            cell["code"] = version
            entry["cells"][target] = cell
            print(f"{case.name:40s} {target:14s} {short(cell)}", flush=True)
            results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")  # a merge alone writes too
    order = [case.name for case in cases(work)]  # table order, whatever order the slices ran in
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    ran = {t for e in results.values() for t in e["cells"]}
    table = markdown(results, [t for t in TARGETS if t in ran] + sorted(ran - set(TARGETS)))
    (work / "coverage.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
