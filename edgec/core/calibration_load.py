"""Open a calibration or evaluation set from what the user named, and split one set in two.

See :mod:`edgec.core.calibration` for the accepted forms. Every problem names the file, and where it
applies the sample and the input.
"""

from __future__ import annotations

import csv
import json
import tokenize
from pathlib import Path

import numpy as np

from edgec.core.calibration import EVAL_FRACTION, IMAGE_SUFFIXES, LABEL_KEYS, SPLIT_SEED, ArrayDataset, CSVDataset, Dataset, ImageFolderDataset, RandomDataset
from edgec.core.errors import ZIP_ERRORS, InputError

InputSpec = dict[str, tuple[tuple[int, ...], str]]
# What numpy raises on a damaged .npy header: its tokenizer's error escapes for an unclosed bracket.
NPY_ERRORS = (ValueError, OverflowError, SyntaxError, tokenize.TokenError)


def open_dataset(spec: str | Path, inputs: InputSpec) -> Dataset:
    """Open ``spec`` (a path or ``"random"``) as a :class:`Dataset` for a model with ``inputs``."""
    if str(spec) == "random":
        return RandomDataset(inputs)
    path = Path(spec)
    if not path.exists():
        raise InputError(f"calibration data '{spec}' not found (give .npz, .npy, .csv, an image folder, "
                         "or 'random')", stage="calibration")
    if not path.is_dir() and not path.is_file():  # a FIFO or a device would block or never end
        raise InputError(f"{path}: not a regular file or folder", stage="calibration")
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
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(f"{file}: not valid JSON: {e}", stage="calibration") from None
    _check_manifest(manifest, file)
    return manifest


def _check_manifest(manifest, file: Path) -> None:
    """The manifest's keys have the types and ranges the loaders rely on (see edgec.core.calibration)."""
    def bad(what: str):
        raise InputError(f"{file}: {what}", stage="calibration")

    if not isinstance(manifest, dict):
        bad("must hold a JSON object")
    classes = manifest.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(
            isinstance(c, str) and c and "/" not in c and "\\" not in c and c not in (".", "..") for c in classes)):
        bad("'classes' must be a list of subfolder names")
    if manifest.get("labels") is not None and not isinstance(manifest["labels"], str):
        bad("'labels' must be the name of the label array or column")
    image = manifest.get("image", {})
    if not isinstance(image, dict):
        bad("'image' must be an object (size, mode, scale, mean, std)")
    size = image.get("size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in size)):
        bad(f"image 'size' must be [height, width] in 1..8192, got {size!r}")
    if image.get("mode", "L") not in ("L", "RGB"):
        bad(f"image 'mode' must be \"L\" or \"RGB\", got {image['mode']!r}")
    for key in ("scale", "mean", "std"):
        value = np.asarray(image.get(key, 1.0), dtype=object)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                   for v in value.reshape(-1)) or value.ndim > 1:
            bad(f"image '{key}' must be a number or a list of numbers, got {image[key]!r}")
    if np.any(np.asarray(image.get("std", 1.0), dtype=np.float64) == 0):
        bad("image 'std' must not be 0")


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
    if labels.dtype.kind not in "iu" and not (np.all(np.equal(np.mod(labels, 1), 0))
                                              and np.all(np.abs(labels) < 2**31)):
        raise InputError(f"{path}: labels must be integer class indices", stage="calibration")
    return labels.astype(np.int64)


def _open_npz(path: Path, inputs: InputSpec, manifest: dict) -> Dataset:
    try:
        archive = np.load(path, allow_pickle=False)  # reads a .npy too, whatever the file's name
    except (*ZIP_ERRORS, *NPY_ERRORS) as e:
        raise InputError(f"{path}: not a readable .npz file ({e})", stage="calibration") from None
    if isinstance(archive, np.ndarray):
        raise InputError(f"{path}: a .npy array, not an .npz archive (name it .npy)", stage="calibration")
    keys = list(archive.files)
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
    return _array_dataset(path, inputs, arrays, _read(archive, label_key, path) if label_key else None)


def _read(archive, key: str, path: Path) -> np.ndarray:
    try:
        array = archive[key]
    except (*ZIP_ERRORS, *NPY_ERRORS) as e:
        raise InputError(f"{path}: array '{key}' is unreadable ({e})", stage="calibration") from None
    if not isinstance(array, np.ndarray):  # numpy hands back the raw bytes of a member that is not .npy
        raise InputError(f"{path}: member '{key}' is not a .npy array", stage="calibration")
    return array


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
    except (*ZIP_ERRORS, *NPY_ERRORS) as e:  # np.load opens a zip whatever its name
        raise InputError(f"{path}: not a readable .npy file ({e})", stage="calibration") from None
    if not isinstance(arr, np.ndarray):  # np.load opens a zip archive whatever its name
        raise InputError(f"{path}: a zip archive, not a .npy array (name it .npz)", stage="calibration")
    return _array_dataset(path, inputs, {next(iter(inputs)): arr}, None)


def _open_csv(path: Path, inputs: InputSpec, manifest: dict) -> Dataset:
    if len(inputs) != 1:
        raise InputError(f"{path}: CSV calibration supports single-input models only", stage="calibration")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: not a readable CSV file ({e})", stage="calibration") from None
    if not rows:
        raise InputError(f"{path}: empty CSV", stage="calibration")
    header = rows[0]
    has_header = any(_not_number(v) for v in header)
    body = rows[1:] if has_header else rows
    labels = None
    label_key = _label_key(header, manifest) if has_header else None
    if label_key:
        col = header.index(label_key)
        labels = np.asarray([_csv_label(r, col, i, path) for i, r in enumerate(body)])
        body = [r[:col] + r[col + 1:] for r in body]
    return CSVDataset(str(path), inputs, body, labels, path)


def _csv_label(row: list[str], col: int, i: int, path: Path) -> int:
    try:
        value = float(row[col])
    except (IndexError, ValueError):
        raise InputError(f"{path}: sample {i}: no numeric label in column {col + 1}", stage="calibration") from None
    if not np.isfinite(value) or value != int(value):
        raise InputError(f"{path}: sample {i}: label {row[col]!r} is not a class index", stage="calibration")
    return int(value)


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
                    files.append(_regular(f))
                    labels.append(label)
    else:
        files = sorted(_regular(f) for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})", stage="calibration")
    return ImageFolderDataset(str(folder), inputs, files, np.asarray(labels) if classes else None,
                              manifest.get("image", {}))


def _regular(file: Path) -> Path:
    """An image path that is a regular file (a FIFO would block the reader, a folder is no image)."""
    if not file.is_file():
        raise InputError(f"{file}: not a regular file", stage="calibration")
    return file
