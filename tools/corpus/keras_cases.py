"""Malformed Keras models: the bundled ``.keras`` archive and the MLPerf Tiny ``.h5`` files, mutated."""

from __future__ import annotations

import io
import json
import os
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

from . import Case, Run
from .byteops import flip, rezip, truncate, unzip, zip_boundaries, zip_members, zip_patch_headers
from .sources import DIGITS_MODEL, MLPERF

RESNET_H5 = MLPERF / "pretrainedResnet.h5"
WAKEWORD_H5 = MLPERF / "str_ww_ref_model.h5"
# How many offsets of each kind a family samples (the names must not depend on the files' bytes).
ZIP_BOUNDARIES = 12
H5_TRUNCATIONS = 8


@cache
def digits() -> bytes:
    """The bundled example model's bytes (the source of every ``.keras`` case)."""
    return DIGITS_MODEL.read_bytes()


def _write(folder: Path, name: str, data: bytes, **run) -> Run:
    path = folder / name
    path.write_bytes(data)
    return Run(model=path, calibration="random", **run)


def _keras_members(config=None, metadata=None, weights=None, extra=()) -> bytes:
    """The digits archive with members replaced (``None`` keeps the original, ``False`` drops it)."""
    members = dict(unzip(digits()))
    out = []
    for name, new in (("metadata.json", metadata), ("config.json", config), ("model.weights.h5", weights)):
        if new is False:
            continue
        if new is not None:
            new = new if isinstance(new, bytes) else json.dumps(new).encode()
        out.append((name, members[name] if new is None else new))
    return rezip([*out, *extra])


def _config() -> dict:
    return json.loads(dict(unzip(digits()))["config.json"])


def _layer(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def _edit(edit) -> bytes:
    config = _config()
    edit(config)
    return _keras_members(config=config)


def _weights_h5(edit) -> bytes:
    """The archive with its ``model.weights.h5`` member edited through h5py."""
    import h5py

    buf = io.BytesIO(dict(unzip(digits()))["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    return _keras_members(weights=buf.getvalue())


def _replace(f, path: str, value) -> None:
    del f[path]
    f[path] = value


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- .keras: named edits of config.json, metadata.json and the weights ------------------------------

CONFIG_EDITS = {
    "config_not_json": b"{\"class_name\": \"Functional\", ",
    "config_is_a_list": [1, 2, 3],
    "config_is_null": b"null",
    "config_is_a_string": "Functional",
    "config_deeply_nested": _deep(200_000),
    "config_binary": bytes(range(256)) * 4,
    "config_empty": b"",
}

LAYER_EDITS = {  # (layer, key in its config, value)
    "dense_units_negative": ("fc1", "units", -5),
    "dense_units_string": ("fc1", "units", "sixteen"),
    "dense_units_huge": ("fc1", "units", 10**12),
    "dense_units_float": ("fc1", "units", 2.5),
    "conv_filters_zero": ("conv1", "filters", 0),
    "conv_kernel_negative": ("conv1", "kernel_size", [-3, 3]),
    "conv_kernel_huge": ("conv1", "kernel_size", [2**31, 3]),
    "conv_padding_unknown": ("conv1", "padding", "sideways"),
    "conv_activation_unknown": ("conv1", "activation", "os.system"),
    "input_shape_negative": ("image", "batch_input_shape", [None, -8, 8, 1]),
    "input_shape_huge": ("image", "batch_input_shape", [None, 2**20, 2**20, 1]),
    "input_shape_zero": ("image", "batch_input_shape", [None, 0, 8, 1]),
    "input_shape_string": ("image", "batch_input_shape", "8x8"),
    "input_dtype_string": ("image", "dtype", "string"),
    "input_dtype_unknown": ("image", "dtype", "float7"),
    "bn_axis_out_of_range": ("bn1", "axis", [9]),
    "dropout_rate_nan": ("dropout", "rate", float("nan")),
}


def _layer_edit(layer: str, key: str, value):
    def edit(config):
        _layer(config, layer)["config"][key] = value
    return lambda folder, rng: _write(folder, "m.keras", _edit(edit))


def _structure_edit(edit):
    return lambda folder, rng: _write(folder, "m.keras", _edit(edit))


def _class_of(layer: str, cls):
    def edit(config):
        _layer(config, layer)["class_name"] = cls
    return edit


STRUCTURE_EDITS = {
    "class_name_is_a_number": _class_of("fc1", 7),
    "class_name_is_a_list": _class_of("fc1", ["Dense"]),
    "class_name_lambda": _class_of("fc1", "Lambda"),
    "class_name_custom": _class_of("fc1", "EvilLayer"),
    "tf_op_function_is_a_list": lambda c: (_class_of("fc1", "TFOpLambda")(c),
                                           _layer(c, "fc1")["config"].__setitem__("function", ["math.add"])),
    "layers_not_a_list": lambda c: c["config"].__setitem__("layers", {"a": 1}),
    "layers_empty": lambda c: c["config"].__setitem__("layers", []),
    "inbound_node_unknown_layer": lambda c: _layer(c, "fc1").__setitem__("inbound_nodes", [[["nowhere", 0, 0, {}]]]),
    "inbound_node_cycle": lambda c: _layer(c, "conv1").__setitem__("inbound_nodes", [[["fc1", 0, 0, {}]]]),
    "duplicate_layer_names": lambda c: _layer(c, "fc1")["config"].__setitem__("name", "conv1"),
    "output_layer_unknown": lambda c: c["config"].__setitem__("output_layers", [["ghost", 0, 0]]),
    "input_layers_missing": lambda c: c["config"].pop("input_layers"),
    "initializer_custom_class": lambda c: _layer(c, "conv1")["config"].__setitem__(
        "kernel_initializer", {"class_name": "Evil", "config": {}}),
    "top_class_unknown": lambda c: c.__setitem__("class_name", "Subprocess"),
}


def _flip_member(member: str, k: int):
    def build(folder, rng):
        name, _, start, end = next(m for m in zip_members(digits()) if m[0] == member)
        return _write(folder, "m.keras", flip(digits(), rng, start, end, count=1 + k))
    return build


def _truncate_boundary(i: int):
    def build(folder, rng):
        offsets = zip_boundaries(digits())
        return _write(folder, "m.keras", truncate(digits(), offsets[i * len(offsets) // ZIP_BOUNDARIES]))
    return build


def _zip_bomb_config(folder, rng):
    # 72 MiB of spaces deflate to ~70 KiB: past edgec's 64 MiB limit for a JSON member. Without
    # the limit a few KiB more of file would be gigabytes of memory.
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", dict(unzip(digits()))["metadata.json"])
        with z.open("config.json", "w", force_zip64=True) as member:
            chunk = b" " * (1 << 20)
            for _ in range(72):
                member.write(chunk)
            member.write(b"{}")
        z.writestr("model.weights.h5", dict(unzip(digits()))["model.weights.h5"])
    return _write(folder, "m.keras", body.getvalue())


def _fifo(folder, rng):
    path = folder / "pipe.keras"
    os.mkfifo(path)
    return Run(model=path, calibration="random")


def _symlink_to_dev(folder, rng):
    path = folder / "zero.keras"
    path.symlink_to("/dev/zero")
    return Run(model=path, calibration="random")


def _static(data):
    return lambda folder, rng: _write(folder, "m.keras", data() if callable(data) else data)


def keras_cases() -> list[Case]:
    """Cases of the ``.keras`` front end."""
    cases = [Case(f"keras_truncate_boundary_{i}", _truncate_boundary(i)) for i in range(ZIP_BOUNDARIES)]
    cases += [Case(f"keras_flip_{m.split('.')[0]}_{k}", _flip_member(m, k))
              for m in ("metadata.json", "config.json", "model.weights.h5") for k in range(4)]
    cases += [Case(f"keras_{name}", _static(lambda v=v: _keras_members(config=v)))
              for name, v in CONFIG_EDITS.items()]
    cases += [Case(f"keras_{name}", _layer_edit(*edit)) for name, edit in LAYER_EDITS.items()]
    cases += [Case(f"keras_{name}", _structure_edit(edit)) for name, edit in STRUCTURE_EDITS.items()]
    members = {
        "metadata_not_json": lambda: _keras_members(metadata=b"{{"),
        "metadata_is_a_list": lambda: _keras_members(metadata=[1]),
        "config_missing": lambda: _keras_members(config=False),
        "weights_missing": lambda: _keras_members(weights=False),
        "weights_not_hdf5": lambda: _keras_members(weights=b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
        "weights_truncated": lambda: _keras_members(weights=dict(unzip(digits()))["model.weights.h5"][:20000]),
        "weights_empty": lambda: _keras_members(weights=b""),
        "weights_kernel_wrong_shape": lambda: _weights_h5(
            lambda f: _replace(f, "layers/dense/vars/0", np.zeros((3, 3), np.float32))),
        "weights_kernel_strings": lambda: _weights_h5(
            lambda f: _replace(f, "layers/dense/vars/0", np.array([b"x"] * 4))),
        "weights_kernel_nan": lambda: _weights_h5(
            lambda f: f["layers/dense/vars/0"].__setitem__((0, 0), np.nan)),
        "weights_bias_inf": lambda: _weights_h5(
            lambda f: f["layers/dense_1/vars/1"].__setitem__(0, np.inf)),
        "weights_variable_missing": lambda: _weights_h5(lambda f: f.__delitem__("layers/conv2d/vars/0")),
        "weights_variable_is_group": lambda: _weights_h5(
            lambda f: (f.__delitem__("layers/conv2d/vars/0"), f.create_group("layers/conv2d/vars/0"))),
        "member_path_traversal": lambda: _keras_members(extra=[("../../escaped.txt", b"x")]),
        "member_absolute_path": lambda: _keras_members(extra=[("/tmp/edgec-corpus-escaped.txt", b"x")]),
        "member_duplicate_config": lambda: _keras_members(extra=[("config.json", json.dumps(
            {"class_name": "Lambda", "config": {"name": "x"}}).encode())]),
        "not_a_zip": lambda: b"this is not a keras archive\n" * 10,
        "empty_file": lambda: b"",
        "zip_of_nothing": lambda: rezip([]),
        "eocd_signature_flipped": lambda: digits()[:digits().rindex(b"PK\x05\x06")] + b"PK\x05\x07" +
        digits()[digits().rindex(b"PK\x05\x06") + 4:],
        "local_header_signature_flipped": lambda: b"PK\x03\x05" + digits()[4:],
        # atheris (fuzz_keras_config): an unknown compression method raised NotImplementedError.
        "fuzz_compression_method_unknown": lambda: zip_patch_headers(digits(), method=99),
        "compression_method_lzma_garbage": lambda: zip_patch_headers(digits(), method=14),
        "compression_method_deflate_on_stored": lambda: zip_patch_headers(digits(), method=8),
        "encrypted_members": lambda: zip_patch_headers(digits(), flags=1),
    }
    cases += [Case(f"keras_{name}", _static(fn)) for name, fn in members.items()]
    cases += [Case("keras_zip_bomb_config", _zip_bomb_config), Case("keras_fifo", _fifo),
              Case("keras_symlink_dev_zero", _symlink_to_dev)]
    return cases


# --- .h5: the MLPerf Tiny ResNet-8 and wake-word models ---------------------------------------------

def _h5_copy(source: Path, folder: Path, edit) -> Run:
    import h5py

    path = folder / "m.h5"
    path.write_bytes(source.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return Run(model=path, calibration="random")


def _h5_config_edit(source: Path, edit):
    def apply(f):
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return lambda folder, rng: _h5_copy(source, folder, apply)


def _h5_attr(source: Path, value):
    def apply(f):
        f.attrs["model_config"] = value
    return lambda folder, rng: _h5_copy(source, folder, apply)


def _h5_datasets(f) -> list[str]:
    import h5py

    names = []
    f["model_weights"].visititems(lambda n, o: names.append("model_weights/" + n) if isinstance(o, h5py.Dataset)
                                  else None)
    return sorted(names)


def _h5_dataset_edit(source: Path, pick: int, edit):
    def apply(f):
        names = _h5_datasets(f)
        edit(f, names[pick % len(names)])
    return lambda folder, rng: _h5_copy(source, folder, apply)


def _h5_truncate(source: Path, i: int):
    def build(folder, rng):
        import h5py

        with h5py.File(source, "r") as f:
            offsets = sorted({f[n].id.get_offset() for n in _h5_datasets(f)} - {None})
        cut = offsets[i * len(offsets) // H5_TRUNCATIONS] if i else 512
        path = folder / "m.h5"
        path.write_bytes(source.read_bytes()[:cut])
        return Run(model=path, calibration="random")
    return build


def _h5_flip_superblock(source: Path):
    def build(folder, rng):
        path = folder / "m.h5"
        path.write_bytes(flip(source.read_bytes(), rng, 0, 8))
        return Run(model=path, calibration="random")
    return build


def _h5_first_layer(config: dict) -> dict:
    return config["config"]["layers"][1]


def h5_cases() -> list[Case]:
    """Cases of the HDF5 front end, on both MLPerf ``.h5`` models."""
    cases = []
    for tag, source in (("resnet", RESNET_H5), ("wakeword", WAKEWORD_H5)):
        cases += [Case(f"h5_{tag}_truncate_{i}", _h5_truncate(source, i)) for i in range(H5_TRUNCATIONS)]
        cases.append(Case(f"h5_{tag}_superblock_flipped", _h5_flip_superblock(source)))
        cases += [
            Case(f"h5_{tag}_no_model_config", lambda folder, rng, s=source: _h5_copy(
                s, folder, lambda f: f.attrs.__delitem__("model_config"))),
            Case(f"h5_{tag}_config_not_json", _h5_attr(source, "{\"class_name\":")),
            Case(f"h5_{tag}_config_deeply_nested", _h5_attr(source, _deep(100_000).decode())),
            Case(f"h5_{tag}_config_is_a_number", _h5_attr(source, "42")),
            Case(f"h5_{tag}_class_name_lambda", _h5_config_edit(
                source, lambda c: _h5_first_layer(c).__setitem__("class_name", "Lambda"))),
            Case(f"h5_{tag}_class_name_number", _h5_config_edit(
                source, lambda c: _h5_first_layer(c).__setitem__("class_name", 3))),
            Case(f"h5_{tag}_input_shape_negative", _h5_config_edit(
                source, lambda c: c["config"]["layers"][0]["config"].__setitem__(
                    "batch_input_shape", [None, -4, 1, 3]))),
            Case(f"h5_{tag}_dataset_wrong_shape", _h5_dataset_edit(
                source, 3, lambda f, n: _replace(f, n, np.zeros((2, 2, 2), np.float32)))),
            Case(f"h5_{tag}_dataset_strings", _h5_dataset_edit(
                source, 5, lambda f, n: _replace(f, n, np.array([b"weights"] * 3)))),
            Case(f"h5_{tag}_dataset_nan", _h5_dataset_edit(
                source, 7, lambda f, n: _replace(f, n, np.full(f[n].shape, np.nan, f[n].dtype)))),
            Case(f"h5_{tag}_dataset_deleted", _h5_dataset_edit(source, 9, lambda f, n: f.__delitem__(n))),
        ]
    return cases


def cases() -> list[Case]:
    """All Keras front-end cases."""
    return keras_cases() + h5_cases()
