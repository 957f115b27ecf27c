"""tools/cifar10.py: the PNG-strip layout is decoded as one image per row, strips in order; a wrong
download is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tools import cifar10


def _png(images: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(images.reshape(len(images), 1024, 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_each_png_row_is_one_row_major_image():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    decoded, labels = cifar10._decode([_png(images)], [7, 1, 4, 9, 9])  # the label file covers more batches
    assert np.array_equal(decoded, images) and labels.tolist() == [7, 1, 4]


def test_the_training_batches_follow_each_other_as_their_labels_do():
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    decoded, labels = cifar10._decode([_png(images[:2]), _png(images[2:])], [3, 1, 4, 1, 5, 9])
    assert np.array_equal(decoded, images) and labels.tolist() == [3, 1, 4, 1, 5]
    with pytest.raises(RuntimeError, match="4 labels for 5 images"):
        cifar10._decode([_png(images[:2]), _png(images[2:])], [3, 1, 4, 1])


def test_a_download_with_another_hash_is_refused_and_removed(tmp_path):
    source = tmp_path / "fake.tgz"
    source.write_bytes(b"not the CIFAR-10 package")
    target = tmp_path / "download.tgz"
    with pytest.raises(RuntimeError, match="is not the pinned"):
        cifar10._download(source.as_uri(), target)
    assert not target.exists()
