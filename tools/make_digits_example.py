"""Train the bundled example: a small CNN on scikit-learn's handwritten digits (real data, no download).

Writes ``edgec/examples/digits_cnn.keras`` and ``calibration/digits/{calibration,eval}.npz`` plus the
manifest. Seeded: rerunning gives the same split and (on the same machine) the same weights.

    .venv/bin/python tools/make_digits_example.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgec.core.tf import keras, seed_everything  # noqa: E402

SEED = 20261125
N_EVAL = 500  # held out, never trained on
N_CALIBRATION = 300  # drawn from the training part, as calibration data usually is


def build_model():
    """Conv-BN-ReLU blocks, so fusion has batch norms to fold; ~80k weights, enough for compression."""
    k = keras()
    inp = k.Input((8, 8, 1), name="image")
    x = inp
    for i, ch in enumerate((32, 64)):
        x = k.layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = k.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = k.layers.ReLU(name=f"relu{i + 1}")(x)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dwconv")(x)
    x = k.layers.BatchNormalization(name="bn3")(x)
    x = k.layers.ReLU(name="relu3")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(64, activation="relu", name="fc1")(x)
    x = k.layers.Dropout(0.2, seed=SEED, name="dropout")(x)
    out = k.layers.Dense(10, activation="softmax", name="probs")(x)
    return k.Model(inp, out, name="digits_cnn")


def main() -> None:
    from sklearn.datasets import load_digits

    seed_everything(SEED)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]  # pixel values 0..16 -> 0..1
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    eval_idx, train_idx = order[:N_EVAL], order[N_EVAL:]
    calib_idx = train_idx[:N_CALIBRATION]

    model = build_model()
    model.compile(optimizer=keras().optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[train_idx], y[train_idx], epochs=60, batch_size=32, shuffle=True, verbose=0,
              validation_data=(x[eval_idx], y[eval_idx]))
    _, acc = model.evaluate(x[eval_idx], y[eval_idx], verbose=0)
    print(f"params={model.count_params()} held-out top-1={acc:.4f}")

    # An uncompiled copy carries no optimizer state: the shipped file holds the weights only.
    clean = build_model()
    clean.set_weights(model.get_weights())
    clean.save(ROOT / "edgec/examples/digits_cnn.keras")
    out = ROOT / "calibration/digits"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "calibration.npz", image=x[calib_idx], label=y[calib_idx])
    np.savez_compressed(out / "eval.npz", image=x[eval_idx], label=y[eval_idx])
    manifest = {
        "name": "digits",
        "inputs": [{"name": "image", "shape": [8, 8, 1], "dtype": "float32"}],
        "labels": "label",
        "preprocessing": "8x8 grayscale digit, pixel values 0..16 divided by 16 (range 0..1), NHWC",
        "provenance": (
            "scikit-learn load_digits() (UCI ML hand-written digits, 1797 images); seeded permutation "
            f"(seed {SEED}): first {N_EVAL} held out as eval.npz, the rest trained on; "
            f"calibration.npz is {N_CALIBRATION} training images. Made by tools/make_digits_example.py"
        ),
        "files": {"calibration": "calibration.npz", "eval": "eval.npz"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
