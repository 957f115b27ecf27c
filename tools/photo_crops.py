"""Natural-image samples for CIFAR-10 models without CIFAR-10: crops of scikit-learn's two sample photos.

The MLPerf Tiny ResNet-8 comes without its data set here. scikit-learn ships two real photographs
(``china.jpg``, ``flower.jpg``, 427x640), so square crops of them, *down*-sampled to 32x32 with an
antialiasing filter like CIFAR-10's own images, make real, unlabelled inputs for calibration,
distillation and fidelity checks (top-1 agreement with the float model).

These crops are far from CIFAR-10's ten classes, and on many of them the float model's answer is
not defined in any useful sense: measured on 300 crops, uniform noise of +-1 grey level (invisible,
smaller than int8's input step) changes the float model's top-1 on 5% of them, +-2 levels on 18%.
No int8 model can agree with such a reference on those crops more often than the reference agrees
with itself. ``stable_crops`` therefore keeps the crops whose float top-1 survives ``draws`` random
+-``noise``-level perturbations (about 70% of them), so that agreement measures the quantization
error rather than the model's chaos off its training distribution.
"""

from __future__ import annotations

import numpy as np


def photo_crops(n: int, seed: int, *, min_size: int = 32, max_size: int = 200) -> np.ndarray:
    """``n`` random square crops (``min_size``..``max_size`` px, half mirrored), antialiased to 32x32.

    Returns float32 ``(n, 32, 32, 3)`` in 0..255, the MLPerf ResNet-8's input range.
    """
    from sklearn.datasets import load_sample_images

    from edgec.core.tf import tensorflow

    tf = tensorflow()
    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        img = images[rng.integers(len(images))]
        size = int(rng.integers(min_size, max_size + 1))
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        crop = img[y:y + size, x:x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(tf.image.resize(crop.astype(np.float32), (32, 32), antialias=True).numpy())
    return np.clip(np.stack(crops), 0, 255).astype(np.float32)


def stable_crops(model, n: int, seed: int, *, noise: float = 2.0, draws: int = 8) -> np.ndarray:
    """Crops (from ``photo_crops(n, seed)``) whose float top-1 in ``model`` no +-``noise`` draw changes."""
    x = photo_crops(n, seed)
    top = model.predict(x, verbose=0).argmax(1)
    rng = np.random.default_rng(seed)
    keep = np.ones(len(x), bool)
    for _ in range(draws):
        noisy = x + rng.uniform(-noise, noise, x.shape).astype(np.float32)
        keep &= model.predict(noisy, verbose=0).argmax(1) == top
    return x[keep]
