"""The npz file of outputs captured on a device, which ``edgec verify --outputs FILE`` reads.

Layout, version 1 (written by the generated harnesses, read by :func:`load`)::

    output_0, output_1, ...   float32, batch first (N, ...): the model's outputs in its output order,
                              dequantized when the model's outputs are int8/uint8
    raw_output_0, ...         optional: the outputs as the runtime returned them (e.g. int8), same N
    input_sha256              str: :func:`inputs_sha256` of the inputs that were fed, so that a file
                              captured on other inputs is refused rather than compared
    runtime                   str: the runtime and its version, e.g. "ai_edge_litert 2.1.0"
    device                    str: where it ran, e.g. "aarch64 Linux-6.1 raspberrypi"
    samples                   int: N
    format_version            int: 1
    latency_ms                optional: float64 (runs,), per-invoke latency of the timing loop

Strings and ints are stored as 0-d numpy arrays (``np.savez`` of a Python str), so the file loads
with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgec.core.errors import InputError

FORMAT_VERSION = 1
REQUIRED = ("input_sha256", "runtime", "device", "samples", "format_version")
OPTIONAL = ("latency_ms",)


def inputs_sha256(inputs: list[np.ndarray]) -> str:
    """SHA-256 of the model inputs in model input order, as little-endian float32 with shapes.

    The harnesses compute the same digest (they cannot import edgec), so it is defined here simply:
    for each input, ``str(shape)`` + newline, then its float32 little-endian C-order bytes.
    """
    h = hashlib.sha256()
    for x in inputs:
        a = np.ascontiguousarray(x, dtype="<f4")
        h.update(f"{tuple(int(d) for d in a.shape)}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class DeviceOutputs:
    """A validated device-outputs file."""

    outputs: list[np.ndarray]
    raw_outputs: list[np.ndarray] | None
    input_sha256: str
    runtime: str
    device: str
    samples: int
    latency_ms: np.ndarray | None = None


def _fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what} (see edgec/device/outputs.py for the layout)", stage="verify")


def _indexed(keys: set[str], prefix: str) -> list[str]:
    found = sorted((k for k in keys if k.startswith(prefix) and k[len(prefix):].isdigit()),
                   key=lambda k: int(k[len(prefix):]))
    return found


def load(path: Path, *, output_shapes: list[tuple[int, ...]] | None = None,
         inputs: list[np.ndarray] | None = None) -> DeviceOutputs:
    """Read and validate a device-outputs npz; raise :class:`InputError` on any mismatch.

    ``output_shapes`` (per sample, without batch) and ``inputs`` (model input order) are what the
    build expects; when given, the file must match them exactly.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise _fail(path, "a single array, not an npz with the keys of the layout")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise _fail(path, f"not a readable npz ({e})") from None
    keys = set(arrays)
    missing = [k for k in REQUIRED if k not in keys]
    outs, raws = _indexed(keys, "output_"), _indexed(keys, "raw_output_")
    if missing or not outs:
        raise _fail(path, f"missing keys: {', '.join(missing + ([] if outs else ['output_0']))}")
    unknown = keys - set(REQUIRED) - set(OPTIONAL) - set(outs) - set(raws)
    if unknown:
        raise _fail(path, f"unknown keys: {', '.join(sorted(unknown))}")
    if outs != [f"output_{i}" for i in range(len(outs))]:
        raise _fail(path, f"outputs must be numbered from output_0 without gaps, got {', '.join(outs)}")
    if raws and raws != [f"raw_{k}" for k in outs]:
        raise _fail(path, "raw_output_k must exist for every output_k, or not at all")
    try:
        version, samples = int(arrays["format_version"]), int(arrays["samples"])
    except (TypeError, ValueError):
        raise _fail(path, "format_version and samples must be integers") from None
    if version != FORMAT_VERSION:
        raise _fail(path, f"format_version {version}, expected {FORMAT_VERSION}")
    outputs = [arrays[k] for k in outs]
    for k, a in zip(outs + raws, outputs + [arrays[k] for k in raws]):
        if a.ndim < 1 or a.shape[0] != samples:
            raise _fail(path, f"'{k}' has shape {a.shape}, expected {samples} samples first")
    for k, a in zip(outs, outputs):
        if not np.issubdtype(a.dtype, np.floating):
            raise _fail(path, f"'{k}' is {a.dtype}; outputs must be float (dequantized)")
    if output_shapes is not None:
        if len(output_shapes) != len(outputs):
            raise _fail(path, f"{len(outputs)} outputs, the model has {len(output_shapes)}")
        for k, a, shape in zip(outs, outputs, output_shapes):
            if tuple(a.shape[1:]) != tuple(shape):
                raise _fail(path, f"'{k}' has per-sample shape {tuple(a.shape[1:])}, the model gives "
                                  f"{tuple(shape)}")
    digest = str(arrays["input_sha256"])
    if inputs is not None:
        if len(inputs[0]) != samples:
            raise _fail(path, f"{samples} samples, but {len(inputs[0])} inputs were given")
        if digest != inputs_sha256(inputs):
            raise _fail(path, "input_sha256 does not match the inputs given: captured on other inputs")
    latency = arrays.get("latency_ms")
    return DeviceOutputs([o.astype(np.float32) for o in outputs], [arrays[k] for k in raws] or None,
                         digest, str(arrays["runtime"]), str(arrays["device"]), samples, latency)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an npz byte-identically for the same arrays (fixed zip timestamps, sorted keys)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, member.getvalue())
    Path(path).write_bytes(buf.getvalue())


def save(path: Path, outputs: list[np.ndarray], *, inputs: list[np.ndarray], runtime: str, device: str,
         raw_outputs: list[np.ndarray] | None = None) -> None:
    """Write outputs in the layout above (for in-process runs; harnesses write it themselves)."""
    arrays: dict[str, np.ndarray] = {f"output_{i}": np.asarray(o, np.float32) for i, o in enumerate(outputs)}
    for i, r in enumerate(raw_outputs or []):
        arrays[f"raw_output_{i}"] = np.asarray(r)
    arrays.update(input_sha256=np.array(inputs_sha256(inputs)), runtime=np.array(runtime),
                  device=np.array(device), samples=np.array(len(inputs[0])),
                  format_version=np.array(FORMAT_VERSION))
    write_npz(path, arrays)
