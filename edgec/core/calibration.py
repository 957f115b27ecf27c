"""Calibration and evaluation samples: loaders, validation, and the deterministic split.

One set feeds every toolchain (TFLite converter, ONNX Runtime, NNCF) so results are comparable.
Samples are addressed by index and read lazily (``.npy`` memory-mapped, images and CSV rows read on
demand), so a large set is streamed batch by batch rather than held whole in memory.

Accepted forms of ``--calibration`` / ``--eval``:

- ``file.npz``: one array per model input, matched by input name (a single-input model also accepts
  a file with one non-label array); labels under ``label``/``labels``/``y`` or the manifest's key.
- ``file.npy``: the samples of a single-input model.
- ``file.csv``: one sample per row, flattened, for a single-input model; a ``label`` column is used.
- a folder of images (``.png``/``.jpg``/``.bmp``/``.pgm``), optionally in one subfolder per class;
  a ``manifest.json`` beside the data says how to resize and normalize.
- ``random``: synthetic uniform samples, only when asked for; accuracy is then not measured.

A ``manifest.json`` in the data's folder, if present, may give ``labels`` (the key), ``classes``,
``inputs`` and ``image`` (``size`` [h, w], ``mode`` "L"/"RGB", ``scale``, ``mean``, ``std``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgec.core.errors import InputError

log = logging.getLogger(__name__)

LABEL_KEYS = ("label", "labels", "y", "target", "targets")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".gif", ".webp"}
RANDOM_SAMPLES = 64
EVAL_FRACTION = 0.25
SPLIT_SEED = 0


class Dataset:
    """Samples for the model's inputs, read lazily by index.

    ``inputs`` maps each model input name to ``(shape without batch, dtype)``. Subclasses implement
    ``_sample(i) -> dict[name, np.ndarray]`` and ``_label(i)``; :meth:`subset` gives a view.
    """

    random = False

    def __init__(self, source: str, inputs: dict[str, tuple[tuple[int, ...], str]], count: int,
                 labels: np.ndarray | None = None, indices: Sequence[int] | None = None):
        self.source = source
        self.inputs = inputs
        self._count = count
        self._labels = labels
        self._indices = list(range(count)) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def labels(self) -> np.ndarray | None:
        """Integer labels of the samples in this view, or None when the set has none."""
        if self._labels is None:
            return None
        return np.asarray(self._labels)[self._indices]

    def subset(self, indices: Sequence[int]) -> Dataset:
        """A view of some samples of this dataset (indices relative to this view)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._indices = [self._indices[i] for i in indices]
        return view

    def _sample(self, i: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def samples(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield one validated sample at a time (float32 arrays without the batch axis)."""
        for i in self._indices:
            yield self._checked(i, self._sample(i))

    def validate(self) -> None:
        """Read every sample once (streamed) so shape, dtype, NaN and inf problems surface up front."""
        for _ in self.samples():
            pass

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Yield dicts of stacked float32 arrays, at most ``batch_size`` samples each."""
        pending: list[dict[str, np.ndarray]] = []
        for sample in self.samples():
            pending.append(sample)
            if len(pending) == batch_size:
                yield _stack(pending)
                pending = []
        if pending:
            yield _stack(pending)

    def arrays(self) -> dict[str, np.ndarray]:
        """All samples stacked (for the small sets of verification)."""
        out = _stack(list(self.samples()))
        return out if out else {n: np.zeros((0, *s), np.float32) for n, (s, _) in self.inputs.items()}

    def _checked(self, i: int, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, (shape, _) in self.inputs.items():
            arr = sample[name]
            if arr.dtype.kind not in "fiub":
                raise InputError(f"{self.source}: sample {i}, input '{name}': dtype {arr.dtype} is not "
                                 "numeric; give float32 samples", stage="calibration")
            if arr.dtype.kind != "f" and str(self.inputs[name][1]).startswith("float"):
                # Raw uint8 pixels for a float model are the classic forgotten preprocessing step.
                raise InputError(f"{self.source}: sample {i}, input '{name}': dtype {arr.dtype} for a "
                                 f"{self.inputs[name][1]} input; apply the model's preprocessing and save "
                                 "float32 samples", stage="calibration")
            if not _shape_matches(arr.shape, shape):
                raise InputError(f"{self.source}: sample {i}, input '{name}': shape {tuple(arr.shape)} "
                                 f"does not match the model's {_fmt_shape(shape)}", stage="calibration")
            arr = arr.astype(np.float32, copy=False)
            if not np.isfinite(arr).all():
                bad = "NaN" if np.isnan(arr).any() else "inf"
                raise InputError(f"{self.source}: sample {i}, input '{name}' contains {bad}",
                                 stage="calibration")
            out[name] = arr
        return out


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not samples:
        return {}
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def _shape_matches(actual: tuple, expected: tuple) -> bool:
    return len(actual) == len(expected) and all(e in (None, -1) or a == e for a, e in zip(actual, expected))


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join("?" if s in (None, -1) else str(s) for s in shape) + ")"


class ArrayDataset(Dataset):
    """Samples from ``.npz``/``.npy`` arrays (``.npy`` memory-mapped)."""

    def __init__(self, source, inputs, arrays: dict[str, np.ndarray], labels=None):
        count = len(next(iter(arrays.values())))
        super().__init__(source, inputs, count, labels)
        self._arrays = arrays

    def _sample(self, i):
        return {name: np.asarray(a[i]) for name, a in self._arrays.items()}


class RandomDataset(Dataset):
    """Seeded uniform [0, 1) samples, used only with ``--calibration random``."""

    random = True

    def __init__(self, inputs, count: int = RANDOM_SAMPLES, seed: int = SPLIT_SEED):
        super().__init__("random", inputs, count)
        self._seed = seed

    def _sample(self, i):
        rng = np.random.default_rng([self._seed, i])
        return {n: rng.random([1 if d in (None, -1) else d for d in s], dtype=np.float32)
                for n, (s, _) in self.inputs.items()}


class ImageFolderDataset(Dataset):
    """Images in a folder (optionally one subfolder per class), resized and normalized per manifest."""

    def __init__(self, source, inputs, files: list[Path], labels, image_spec: dict):
        super().__init__(source, inputs, len(files), labels)
        self._files = files
        self._spec = image_spec

    def _sample(self, i):
        from PIL import Image, UnidentifiedImageError

        (name, (shape, _)), = self.inputs.items()
        h, w, channels = shape[-3], shape[-2], shape[-1]
        mode = self._spec.get("mode", "L" if channels == 1 else "RGB")
        size = self._spec.get("size", [h, w])
        try:
            with Image.open(self._files[i]) as im:
                im.verify()  # chunk checksums: a flipped bit is refused, not decoded into a sample
            with Image.open(self._files[i]) as im:
                im = im.convert(mode).resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
                arr = np.asarray(im, np.float32)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise InputError(f"{self._files[i]}: not a readable image ({e})", stage="calibration") from None
        if arr.ndim == 2:
            arr = arr[..., None]
        arr = arr * float(self._spec.get("scale", 1.0 / 255.0))
        arr = (arr - np.asarray(self._spec.get("mean", 0.0), np.float32)) / np.asarray(
            self._spec.get("std", 1.0), np.float32)
        return {name: arr}


class CSVDataset(Dataset):
    """One flattened sample per CSV row (single-input models); a label column is used if present."""

    def __init__(self, source, inputs, rows: list[list[str]], labels, path: Path):
        super().__init__(source, inputs, len(rows), labels)
        self._rows = rows
        self._path = path

    def _sample(self, i):
        (name, (shape, _)), = self.inputs.items()
        try:
            flat = np.asarray([float(v) for v in self._rows[i]], np.float32)
        except ValueError as e:
            raise InputError(f"{self._path}: sample {i}: {e}", stage="calibration") from None
        want = int(np.prod([d for d in shape if d not in (None, -1)]))
        if flat.size != want:
            raise InputError(f"{self._path}: sample {i}, input '{name}': {flat.size} values, the model's "
                             f"{_fmt_shape(shape)} needs {want}", stage="calibration")
        return {name: flat.reshape([d for d in shape])}
