"""tools/cifar10.py: the PNG-strip layout is decoded as one image per row; a wrong download is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tools import cifar10


def test_each_png_row_is_one_row_major_image():
    from PIL import Image

    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(images.reshape(3, 1024, 3)).save(buf, format="PNG")
    decoded, labels = cifar10._decode(buf.getvalue(), [7, 1, 4, 9, 9])  # the label file covers more batches
    assert np.array_equal(decoded, images) and labels.tolist() == [7, 1, 4]


def test_a_download_with_another_hash_is_refused_and_removed(tmp_path):
    source = tmp_path / "fake.tgz"
    source.write_bytes(b"not the CIFAR-10 package")
    target = tmp_path / "download.tgz"
    with pytest.raises(RuntimeError, match="is not the pinned"):
        cifar10._download(source.as_uri(), target)
    assert not target.exists()
