"""Open a calibration or evaluation set from what the user named, and split one set in two.

See :mod:`edgec.calibration` for the accepted forms. Every problem names the file, and where it
applies the sample and the input.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np

from .calibration import (EVAL_FRACTION, IMAGE_SUFFIXES, LABEL_KEYS, SPLIT_SEED, ArrayDataset,
                          CSVDataset, Dataset, ImageFolderDataset, RandomDataset)
from .errors import InputError

InputSpec = dict[str, tuple[tuple[int, ...], str]]


def open_dataset(spec: str | Path, inputs: InputSpec) -> Dataset:
    """Open ``spec`` (a path or ``"random"``) as a :class:`Dataset` for a model with ``inputs``."""
    if str(spec) == "random":
        return RandomDataset(inputs)
    path = Path(spec)
    if not path.exists():
        raise InputError(f"calibration data '{spec}' not found (give .npz, .npy, .csv, an image folder, "
                         "or 'random')", stage="calibration")
    manifest = _manifest(path)
    if path.is_dir():
        return _open_images(path, inputs, manifest)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _open_npz(path, inputs, manifest)
    if suffix == ".npy":
        return _open_npy(path, inputs)
    if suffix == ".csv":
        return _open_csv(path, inputs, manifest)
    raise InputError(f"{path}: unsupported calibration format '{suffix}' (use .npz, .npy, .csv or an "
                     "image folder)", stage="calibration")


def split(dataset: Dataset, *, eval_fraction: float = EVAL_FRACTION, seed: int = SPLIT_SEED
          ) -> tuple[Dataset, Dataset]:
    """Deterministically split one set into (calibration, held-out evaluation) views."""
    n = len(dataset)
    if n < 2:
        raise InputError(f"{dataset.source}: {n} sample(s); need at least 2 to split into calibration "
                         "and evaluation, or pass --eval", stage="calibration")
    order = np.random.default_rng(seed).permutation(n)
    n_eval = max(1, int(round(n * eval_fraction)))
    held_out = sorted(int(i) for i in order[:n_eval])
    calib = sorted(int(i) for i in order[n_eval:])
    return dataset.subset(calib), dataset.subset(held_out)


def _manifest(path: Path) -> dict:
    folder = path if path.is_dir() else path.parent
    file = folder / "manifest.json"
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: not valid JSON: {e}", stage="calibration") from None


def _label_key(keys, manifest: dict) -> str | None:
    wanted = manifest.get("labels")
    if wanted:
        return wanted if wanted in keys else None
    return next((k for k in LABEL_KEYS if k in keys), None)


def _labels(values: np.ndarray, path: Path, count: int) -> np.ndarray:
    labels = np.asarray(values)
    if labels.dtype.kind not in "iuf":
        raise InputError(f"{path}: labels must be integer class indices, got dtype {labels.dtype}",
                         stage="calibration")
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if len(labels) != count:
        raise InputError(f"{path}: {len(labels)} labels for {count} samples", stage="calibration")
    if labels.dtype.kind not in "iu" and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise InputError(f"{path}: labels must be integer class indices", stage="calibration")
    return labels.astype(np.int64)


def _open_npz(path: Path, inputs: InputSpec, manifest: dict) -> Dataset:
    try:
        archive = np.load(path, allow_pickle=False)
        keys = list(archive.files)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e})", stage="calibration") from None
    label_key = _label_key(keys, manifest)
    data_keys = [k for k in keys if k != label_key]
    arrays = {}
    for name in inputs:
        if name in data_keys:
            arrays[name] = _read(archive, name, path)
        elif len(inputs) == 1 and len(data_keys) == 1:
            arrays[name] = _read(archive, data_keys[0], path)
        else:
            raise InputError(f"{path}: no array named '{name}' for model input '{name}' (arrays: "
                             f"{', '.join(data_keys) or 'none'})", stage="calibration")
    return _array_dataset(path, inputs, arrays, archive[label_key] if label_key else None)


def _read(archive, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path}: array '{key}' is unreadable ({e})", stage="calibration") from None


def _array_dataset(path: Path, inputs: InputSpec, arrays: dict, labels) -> Dataset:
    counts = {name: (len(a) if a.ndim else 0) for name, a in arrays.items()}
    for name, arr in arrays.items():
        shape, _ = inputs[name]
        if arr.ndim != len(shape) + 1:
            raise InputError(f"{path}: array for input '{name}' has shape {arr.shape}; expected "
                             f"(samples, {', '.join('?' if d in (None, -1) else str(d) for d in shape)})",
                             stage="calibration")
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise InputError(f"{path}: inputs have different or zero sample counts {counts}", stage="calibration")
    count = next(iter(counts.values()))
    return ArrayDataset(str(path), inputs, arrays, _labels(labels, path, count) if labels is not None else None)


def _open_npy(path: Path, inputs: InputSpec) -> Dataset:
    if len(inputs) != 1:
        raise InputError(f"{path}: a .npy file holds one array; the model has inputs {list(inputs)}: "
                         "use an .npz with one array per input name", stage="calibration")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e})", stage="calibration") from None
    return _array_dataset(path, inputs, {next(iter(inputs)): arr}, None)


def _open_csv(path: Path, inputs: InputSpec, manifest: dict) -> Dataset:
    if len(inputs) != 1:
        raise InputError(f"{path}: CSV calibration supports single-input models only", stage="calibration")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise InputError(f"{path}: empty CSV", stage="calibration")
    header = rows[0]
    has_header = any(_not_number(v) for v in header)
    body = rows[1:] if has_header else rows
    labels = None
    label_key = _label_key(header, manifest) if has_header else None
    if label_key:
        col = header.index(label_key)
        labels = np.asarray([int(float(r[col])) for r in body])
        body = [r[:col] + r[col + 1:] for r in body]
    return CSVDataset(str(path), inputs, body, labels, path)


def _not_number(value: str) -> bool:
    try:
        float(value)
        return False
    except ValueError:
        return True


def _open_images(folder: Path, inputs: InputSpec, manifest: dict) -> Dataset:
    if len(inputs) != 1:
        raise InputError(f"{folder}: image folders support single-input models only", stage="calibration")
    (name, (shape, _)), = inputs.items()
    if len(shape) != 3:
        raise InputError(f"{folder}: image folder for input '{name}' of shape {shape}; images need an "
                         "(H, W, C) input", stage="calibration")
    classes = manifest.get("classes") or sorted(p.name for p in folder.iterdir() if p.is_dir())
    files, labels = [], []
    if classes:
        for label, cls in enumerate(classes):
            for f in sorted((folder / cls).iterdir()) if (folder / cls).is_dir() else []:
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(f)
                    labels.append(label)
    else:
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})", stage="calibration")
    return ImageFolderDataset(str(folder), inputs, files, np.asarray(labels) if classes else None,
                              manifest.get("image", {}))
