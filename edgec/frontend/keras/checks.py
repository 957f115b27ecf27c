"""Validation of Keras model files before and after tf_keras reads them (see :mod:`edgec.frontend.load`).

Each check refuses, with one :class:`InputError` line, something tf_keras would mishandle: archive
members that escape or repeat, a bad CRC it would not notice, a JSON member large enough to be a
decompression bomb, a cycle of inbound nodes (tf_keras loops forever), and NaN or inf weights.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from edgec.core.errors import InputError

STAGE = "load"


# A saved model's JSON members are a few hundred KiB; anything far larger is a decompression bomb.
MAX_JSON_BYTES = 64 << 20


def check_archive(z: zipfile.ZipFile, path: Path) -> None:
    """Refuse member names that would escape a folder or repeat, and members whose CRC is wrong."""
    names = z.namelist()
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise InputError(f"{path}: archive member '{name}' points outside the archive; refused",
                             stage=STAGE)
    if len(set(names)) != len(names):
        raise InputError(f"{path}: archive holds duplicate members; refused", stage=STAGE)
    bad = z.testzip()  # tf_keras reads the weights member partially and would miss a bad CRC
    if bad is not None:
        raise InputError(f"{path}: corrupt .keras file (bad CRC in member '{bad}')", stage=STAGE)


def json_member(z: zipfile.ZipFile, name: str, path: Path) -> Any:
    """A JSON member of a Keras archive, read with a size limit (a zip bomb cannot take the memory)."""
    if z.getinfo(name).file_size > MAX_JSON_BYTES:
        raise InputError(f"{path}: member '{name}' is over {MAX_JSON_BYTES >> 20} MiB; refused", stage=STAGE)
    with z.open(name) as member:
        data = member.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise InputError(f"{path}: member '{name}' is over {MAX_JSON_BYTES >> 20} MiB; refused", stage=STAGE)
    return json.loads(data)


def _references(node: Any) -> set[tuple[str, int]]:
    """(layer name, node index) pairs one inbound node reads (Keras 2 lists, Keras 3 keras_history)."""
    found, stack = set(), [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            history = item.get("keras_history")
            if isinstance(history, list) and len(history) >= 2 and isinstance(history[0], str) \
                    and isinstance(history[1], int):
                found.add((history[0], history[1]))
            stack.extend(item.values())
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                found.add((item[0], item[1]))
            stack.extend(item)
    return found


def check_graph(config: Any, path: Path) -> None:
    """Refuse a functional config whose layers feed each other in a cycle (tf_keras loops forever on it)."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        layers = item.get("layers")
        if not isinstance(layers, list):
            continue
        # Nodes, not layers: a shared layer may legitimately be called on its own earlier output.
        edges = {}
        for layer in layers:
            nodes = layer.get("inbound_nodes", []) if isinstance(layer, dict) else []
            for index, node in enumerate(nodes if isinstance(nodes, list) else []):
                edges[(_layer_name(layer), index)] = _references(node)
        _refuse_cycle(edges, path)


def _layer_name(layer: dict) -> str:
    config = layer.get("config")
    return str(layer.get("name", config.get("name") if isinstance(config, dict) else None))


def _refuse_cycle(edges: dict[tuple[str, int], set[tuple[str, int]]], path: Path) -> None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in edges:
        if state.get(start):
            continue
        state[start] = 1
        todo = [(start, iter(sorted(edges[start])))]
        while todo:
            node, children = todo[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                todo.pop()
            elif state.get(child) == 1:
                raise InputError(f"{path}: layer '{child[0]}' feeds itself through a cycle of inbound nodes; "
                                 "corrupt model config", stage=STAGE)
            elif child in edges and not state.get(child):
                state[child] = 1
                todo.append((child, iter(sorted(edges[child]))))


def check_weights(model, path: Path) -> None:
    """NaN or inf in a weight poisons calibration ranges and every output: a corrupt file."""
    import numpy as np

    for weight in model.weights:
        if not np.isfinite(weight.numpy()).all():
            raise InputError(f"{path}: weight '{weight.name}' contains NaN or inf; corrupt or diverged model",
                             stage=STAGE)
