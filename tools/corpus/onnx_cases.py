"""Malformed ONNX models: a small CNN built in code (fixed seed), mutated in bytes and in structure."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import Case, Run
from .byteops import flip, length_varints, protobuf_boundaries, truncate

GRAPH_FIELD = 7  # ModelProto.graph
TRUNCATIONS = 14
LENGTH_FLIPS = 8


def small_cnn():
    """x[N,1,8,8] -> Conv(4, 3x3, same) -> Relu -> Flatten -> Gemm(10) -> y[N,10], opset 17."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("W", rng.standard_normal((4, 1, 3, 3)) * 0.3), ("B", rng.standard_normal(4) * 0.1),
        ("W2", rng.standard_normal((256, 10)) * 0.1), ("B2", rng.standard_normal(10) * 0.1))]
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)  # the source itself is valid
    return model


def _save(folder: Path, model=None, data: bytes | None = None, name: str = "m.onnx") -> Run:
    path = folder / name
    path.write_bytes(data if data is not None else model.SerializeToString())
    return Run(model=path, calibration="random")


def _edited(edit):
    def build(folder, rng):
        model = small_cnn()
        edit(model)
        return _save(folder, model)
    return build


def _node(model, name: str):
    return next(n for n in model.graph.node if n.name == name)


def _init(model, name: str):
    return next(t for t in model.graph.initializer if t.name == name)


def _dims(value, dims) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        shape.dim.add().dim_value = d  # protobuf stores negative int64 as given


def _attr(node, name: str, value) -> None:
    from onnx import helper

    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def _opset(version: int, domain: str = ""):
    def edit(m):
        del m.opset_import[:]
        if version:
            m.opset_import.add(domain=domain, version=version)
    return edit


def _op(node: str, op_type: str, domain: str = ""):
    def edit(m):
        _node(m, node).op_type = op_type
        _node(m, node).domain = domain
    return edit


def _nan_weight(m):
    from onnx import numpy_helper

    w = numpy_helper.to_array(_init(m, "W2")).copy()
    w[3, 4] = np.nan
    _init(m, "W2").CopyFrom(numpy_helper.from_array(w, "W2"))


def _elem_type(value_index: int, elem: int):
    def edit(m):
        m.graph.input[value_index].type.tensor_type.elem_type = elem
    return edit


STRUCTURE = {
    "cycle_two_nodes": lambda m: _node(m, "conv").input.__setitem__(0, "r"),
    "cycle_self_loop": lambda m: _node(m, "relu").input.__setitem__(0, "r"),
    "input_dim_huge": lambda m: _dims(m.graph.input[0], [1, 1, 2**40, 8]),
    "input_dim_negative": lambda m: _dims(m.graph.input[0], [1, 1, -8, 8]),
    "input_dim_zero": lambda m: _dims(m.graph.input[0], [1, 1, 0, 8]),
    "input_dim_dynamic_height": lambda m: m.graph.input[0].type.tensor_type.shape.dim[2].__setattr__(
        "dim_param", "H"),
    "input_rank_wrong": lambda m: _dims(m.graph.input[0], [1, 8, 8]),
    "initializer_dims_huge": lambda m: _init(m, "W2").dims.__setitem__(0, 2**31),
    "initializer_dims_negative": lambda m: _init(m, "W2").dims.__setitem__(0, -256),
    "initializer_raw_data_short": lambda m: _init(m, "W2").__setattr__("raw_data", _init(m, "W2").raw_data[:100]),
    "initializer_missing": lambda m: m.graph.initializer.remove(_init(m, "W")),
    "initializer_duplicate_name": lambda m: m.graph.initializer.append(_init(m, "B")),
    "initializer_string_type": lambda m: _init(m, "B2").__setattr__("data_type", 8),
    "initializer_undefined_type": lambda m: _init(m, "B2").__setattr__("data_type", 0),
    "initializer_nan": _nan_weight,
    "duplicate_node_output": lambda m: _node(m, "relu").output.__setitem__(0, "c"),
    "duplicate_graph_input": lambda m: m.graph.input.append(m.graph.input[0]),
    "input_shadows_initializer": lambda m: m.graph.input[0].__setattr__("name", "W"),
    "node_input_undefined": lambda m: _node(m, "flatten").input.__setitem__(0, "nowhere"),
    "graph_output_undefined": lambda m: m.graph.output[0].__setattr__("name", "ghost"),
    "graph_no_outputs": lambda m: m.graph.ClearField("output"),
    "graph_no_inputs": lambda m: m.graph.ClearField("input"),
    "graph_no_nodes": lambda m: m.graph.ClearField("node"),
    "output_is_initializer": lambda m: m.graph.output[0].__setattr__("name", "B2"),
    "conv_kernel_mismatch": lambda m: _attr(_node(m, "conv"), "kernel_shape", [5, 5]),
    "conv_pads_negative": lambda m: _attr(_node(m, "conv"), "pads", [-4, -4, -4, -4]),
    "conv_strides_zero": lambda m: _attr(_node(m, "conv"), "strides", [0, 0]),
    "conv_group_zero": lambda m: _attr(_node(m, "conv"), "group", 0),
    "conv_pads_string": lambda m: _attr(_node(m, "conv"), "pads", "same"),
    "gemm_shape_mismatch": lambda m: _node(m, "fc").input.__setitem__(1, "W"),
    "op_unknown": _op("relu", "Frobnicate"),
    "op_unsupported_by_lowering": _op("relu", "Einsum"),
    "op_custom_domain": _op("relu", "Relu", "com.evil"),
    "op_empty_type": _op("relu", ""),
    "opset_missing": _opset(0),
    "opset_ancient": _opset(1),
    "opset_future": _opset(99),
    "opset_only_custom_domain": _opset(1, "com.evil"),
    "ir_version_future": lambda m: m.__setattr__("ir_version", 99),
    "ir_version_zero": lambda m: m.__setattr__("ir_version", 0),
    "input_elem_string": _elem_type(0, 8),
    "input_elem_undefined": _elem_type(0, 0),
    "input_no_type": lambda m: m.graph.input[0].ClearField("type"),
}


# --- external data: every trick must be refused before a byte of it is read ------------------------

def _external(location_of, setup=None, extra=None):
    """Save the CNN with W2 in external data, then rewrite its location (and entries) for the trick."""
    def build(folder, rng):
        import onnx

        model = small_cnn()
        onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="weights.bin", size_threshold=512)
        saved = onnx.load(str(folder / "m.onnx"), load_external_data=False)
        tensor = _init(saved, "W2")
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location_of(folder)
        for key, value in (extra or {}).items():
            entry = next((e for e in tensor.external_data if e.key == key), None) or tensor.external_data.add()
            entry.key, entry.value = key, value
        if setup is not None:
            setup(folder)
        return _save(folder, saved)
    return build


def _symlink_out(folder: Path) -> None:
    outside = folder.parent / "outside.bin"  # beside the model's folder, not in it
    outside.write_bytes((folder / "weights.bin").read_bytes())
    (folder / "link.bin").symlink_to(outside)


def _location_not_utf8(folder, rng):
    run = _external(lambda f: "weights.bin")(folder, rng)
    path = Path(run.model)
    path.write_bytes(path.read_bytes().replace(b"weights.bin", b"weight\xff.bin"))
    return run


EXTERNAL = {
    "external_dotdot": _external(lambda f: "../weights.bin"),
    "external_absolute": _external(lambda f: "/etc/passwd"),
    "external_windows_drive": _external(lambda f: "C:\\weights.bin"),
    "external_missing_file": _external(lambda f: "nothere.bin"),
    "external_empty_location": _external(lambda f: ""),
    "external_is_a_folder": _external(lambda f: "sub", setup=lambda f: (f / "sub").mkdir()),
    "external_is_a_fifo": _external(lambda f: "pipe.bin", setup=lambda f: os.mkfifo(f / "pipe.bin")),
    "external_dev_zero_symlink": _external(lambda f: "zero.bin",
                                           setup=lambda f: (f / "zero.bin").symlink_to("/dev/zero")),
    "external_symlink_out": _external(lambda f: "link.bin", setup=_symlink_out),
    "external_symlink_inside": _external(lambda f: "link.bin", setup=lambda f: (f / "link.bin").symlink_to(
        f / "weights.bin")),
    "external_nul_in_location": _external(lambda f: "weights.bin\x00.txt"),
    "external_offset_beyond_file": _external(lambda f: "weights.bin", extra={"offset": "999999999"}),
    "external_length_beyond_file": _external(lambda f: "weights.bin", extra={"length": "999999999"}),
    "external_offset_negative": _external(lambda f: "weights.bin", extra={"offset": "-64"}),
    "external_offset_not_a_number": _external(lambda f: "weights.bin", extra={"offset": "0x10"}),
    # atheris (fuzz_onnx): a location that is not UTF-8 came back as bytes and raised TypeError.
    "fuzz_external_location_not_utf8": _location_not_utf8,
    "external_length_short": _external(lambda f: "weights.bin", extra={"length": "100"}),
}


def _truncated(i: int):
    def build(folder, rng):
        data = small_cnn().SerializeToString()
        offsets = protobuf_boundaries(data, GRAPH_FIELD)
        return _save(folder, data=truncate(data, offsets[i * len(offsets) // TRUNCATIONS]))
    return build


def _length_flip(i: int):
    def build(folder, rng):
        data = small_cnn().SerializeToString()
        positions = length_varints(data, GRAPH_FIELD)
        pos = positions[i * len(positions) // LENGTH_FLIPS]
        return _save(folder, data=flip(data, rng, pos, pos + 1, count=1))
    return build


def _raw(data: bytes):
    return lambda folder, rng: _save(folder, data=data)


def cases() -> list[Case]:
    """All ONNX front-end cases."""
    out = [Case(f"onnx_truncate_boundary_{i}", _truncated(i)) for i in range(TRUNCATIONS)]
    out += [Case(f"onnx_length_varint_flip_{i}", _length_flip(i)) for i in range(LENGTH_FLIPS)]
    out += [Case(f"onnx_{name}", _edited(edit)) for name, edit in STRUCTURE.items()]
    out += [Case(f"onnx_{name}", build) for name, build in EXTERNAL.items()]
    out += [Case("onnx_empty_file", _raw(b"")), Case("onnx_text_file", _raw(b"graph { node { } }\n")),
            Case("onnx_random_bytes", lambda folder, rng: _save(folder, data=rng.randbytes(4096)))]
    return out
