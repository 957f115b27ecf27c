"""Calibration sets: loaders, validation messages, the deterministic split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgec.core.calibration_load import open_dataset, split
from edgec.core.errors import InputError

INPUTS = {"image": ((8, 8, 1), "float32")}


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_arrays_are_matched_to_inputs_by_name_with_labels(tmp_path):
    x = np.random.default_rng(0).random((10, 8, 8, 1), dtype=np.float32)
    ds = open_dataset(_npz(tmp_path / "d.npz", image=x, label=np.arange(10)), INPUTS)
    assert len(ds) == 10
    assert np.array_equal(ds.arrays()["image"], x)
    assert list(ds.labels) == list(range(10))


def test_single_input_model_accepts_one_unnamed_array(tmp_path):
    x = np.zeros((4, 8, 8, 1), np.float32)
    ds = open_dataset(_npz(tmp_path / "d.npz", samples=x), INPUTS)
    assert ds.arrays()["image"].shape == (4, 8, 8, 1) and ds.labels is None


def test_missing_input_name_is_refused_naming_the_arrays(tmp_path):
    inputs = {"a": ((2,), "float32"), "b": ((2,), "float32")}
    path = _npz(tmp_path / "d.npz", a=np.zeros((3, 2)), c=np.zeros((3, 2)))
    with pytest.raises(InputError, match=r"no array named 'b'.*arrays: a, c"):
        open_dataset(path, inputs)


def test_wrong_shape_names_the_file_and_input(tmp_path):
    path = _npz(tmp_path / "d.npz", image=np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(InputError, match=r"d.npz: sample 0, input 'image': shape \(8, 8, 3\) does not match"):
        open_dataset(path, INPUTS).arrays()


def test_wrong_rank_is_refused_before_reading_samples(tmp_path):
    path = _npz(tmp_path / "d.npz", image=np.zeros((3, 64), np.float32))
    with pytest.raises(InputError, match=r"shape \(3, 64\); expected \(samples, 8, 8, 1\)"):
        open_dataset(path, INPUTS)


@pytest.mark.parametrize("bad,word", [(np.nan, "NaN"), (np.inf, "inf")])
def test_nan_and_inf_name_the_file_sample_and_input(tmp_path, bad, word):
    x = np.zeros((5, 8, 8, 1), np.float32)
    x[3, 1, 2, 0] = bad
    path = _npz(tmp_path / "d.npz", image=x)
    with pytest.raises(InputError, match=rf"d.npz: sample 3, input 'image' contains {word}"):
        open_dataset(path, INPUTS).arrays()


def test_non_numeric_dtype_is_refused(tmp_path):
    path = _npz(tmp_path / "d.npz", image=np.full((2, 8, 8, 1), "a"))
    with pytest.raises(InputError, match=r"sample 0, input 'image': dtype <U1 is not numeric"):
        open_dataset(path, INPUTS).arrays()


def test_corrupt_npz_is_one_clear_error(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="not a readable .npz"):
        open_dataset(path, INPUTS)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_dataset(tmp_path / "nope.npz", INPUTS)
    (tmp_path / "d.txt").write_text("1,2")
    with pytest.raises(InputError, match="unsupported calibration format '.txt'"):
        open_dataset(tmp_path / "d.txt", INPUTS)


def test_npy_is_memory_mapped(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((6, 8, 8, 1), np.float32))
    ds = open_dataset(tmp_path / "d.npy", INPUTS)
    assert isinstance(ds._arrays["image"], np.memmap)
    assert sum(len(b["image"]) for b in ds.batches(4)) == 6


def test_csv_rows_with_label_column(tmp_path):
    rows = ["label," + ",".join(f"p{i}" for i in range(64))]
    rows += [f"{k}," + ",".join(str(k / 10) for _ in range(64)) for k in range(3)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    ds = open_dataset(tmp_path / "d.csv", INPUTS)
    assert list(ds.labels) == [0, 1, 2]
    assert np.allclose(ds.arrays()["image"][2], 0.2)


def test_csv_row_of_wrong_length_names_the_sample(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,3\n")
    with pytest.raises(InputError, match="sample 0, input 'image': 3 values"):
        open_dataset(tmp_path / "d.csv", INPUTS).arrays()


def test_image_folder_with_class_subfolders_is_resized_and_normalized(tmp_path):
    from PIL import Image

    for cls, value in (("zero", 0), ("one", 255)):
        (tmp_path / cls).mkdir()
        Image.new("L", (16, 16), value).save(tmp_path / cls / "a.png")
    (tmp_path / "manifest.json").write_text(json.dumps({"classes": ["zero", "one"], "image": {"scale": 1 / 255}}))
    ds = open_dataset(tmp_path, INPUTS)
    arrays = ds.arrays()["image"]
    assert arrays.shape == (2, 8, 8, 1)
    assert list(ds.labels) == [0, 1] and np.allclose(arrays[1], 1.0)


def test_split_is_deterministic_and_disjoint(tmp_path):
    ds = open_dataset(_npz(tmp_path / "d.npz", image=np.zeros((40, 8, 8, 1), np.float32),
                           label=np.arange(40)), INPUTS)
    c1, e1 = split(ds)
    c2, e2 = split(ds)
    assert list(e1.labels) == list(e2.labels) and list(c1.labels) == list(c2.labels)
    assert not set(c1.labels) & set(e1.labels)
    assert len(c1) + len(e1) == 40 and len(e1) == 10


def test_random_is_marked_and_seeded():
    a = open_dataset("random", INPUTS)
    b = open_dataset("random", INPUTS)
    assert a.random and np.array_equal(a.arrays()["image"], b.arrays()["image"])
