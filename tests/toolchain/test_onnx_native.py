"""ONNX stays ONNX: ONNX Runtime and OpenVINO targets quantize the user's (onnxslim-folded) graph,
and the Keras lowering runs only for TFLite-based targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgec.frontend.onnx import read as load_onnx
from tests.toolchain.test_onnx_lower import _ints, _value, _w

pytestmark = pytest.mark.toolchain

ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _native_only_model(path: Path) -> None:
    """A CNN with Softplus (not in the lowering) and TorchScript-style shape arithmetic."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("Softplus", ["r1"], ["soft"], name="softplus"),
        n("GlobalAveragePool", ["soft"], ["gap"], name="gap"),
        # Shape -> Gather -> Unsqueeze -> Concat -> Reshape: the flatten torch.jit leaves behind.
        n("Shape", ["gap"], ["shape"], name="shape"),
        n("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        n("Unsqueeze", ["batch", "axis0"], ["batch1"], name="unsqueeze"),
        n("Concat", ["batch1", "minus1"], ["newshape"], name="concat", axis=0),
        n("Reshape", ["gap", "newshape"], ["flat"], name="reshape"),
        n("Gemm", ["flat", "wg", "bg"], ["y"], name="fc", transB=1),
    ]
    inits = [_w("w1", 8, 3, 3, 3), _w("b1", 8), numpy_helper.from_array(np.int64(0), "zero"),
             _ints("axis0", [0]), _ints("minus1", [-1]), _w("wg", 5, 8), _w("bg", 5)]
    graph = helper.make_graph(nodes, "softplus_cnn", [_value("x", "N", 3, 16, 16)], [_value("y", "N", 5)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_folding_removes_shape_arithmetic_and_keeps_outputs(tmp_path):
    _native_only_model(tmp_path / "m.onnx")
    original = load_onnx.read(tmp_path / "m.onnx")
    folded = load_onnx.fold(original)
    ops = {node.op_type for node in folded.graph.node}
    assert not ops & {"Shape", "Gather", "Concat", "Unsqueeze"}, ops
    assert {"Conv", "Softplus", "Gemm"} <= ops
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    from edgec.frontend.onnx.lower import run_onnx

    np.testing.assert_allclose(run_onnx(folded, {"x": x})[0], run_onnx(original, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_onnx_model_outside_the_lowering_compiles_natively_and_only_tflite_targets_need_lowering(run_cli, tmp_path):
    _native_only_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).uniform(-1, 1, (24, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "out"
    code, _, err = run_cli("compile", tmp_path / "m.onnx", "-t", "onnx-cpu", "-t", "intel-cpu",
                           "--calibration", tmp_path / "calib.npz", "-o", out)
    assert code == 0, err
    for target, runtime in (("onnx-cpu", "onnxruntime"), ("intel-cpu", "openvino")):
        report = json.loads((out / target / "report.json").read_text())
        assert report["verification"]["runtime"] == runtime and report["verification"]["passed"]
        assert report["verification"]["cosine"] > 0.99
        assert any("no Keras lowering" in note for note in report["model"]["notes"])
        assert report["size"]["float_tflite_bytes"] is None and report["model"]["macs"] is None
        assert report["model"]["params"] == 8 * 3 * 9 + 8 + 5 * 8 + 5
    shipped = onnx.load(str(out / "onnx-cpu" / "model.onnx"))
    ops = {node.op_type for node in shipped.graph.node}
    assert {"Softplus", "QuantizeLinear", "DequantizeLinear"} <= ops  # the user's operator, int8 around it
    assert json.loads((out / "onnx-cpu" / "report.json").read_text())["onnx"]["fusion"]["source"].startswith(
        "the model's own ONNX graph")
    # Same inputs, same bytes: folding and quantize_static of the user's graph are deterministic.
    code, _, err = run_cli("compile", tmp_path / "m.onnx", "-t", "onnx-cpu", "--calibration", tmp_path / "calib.npz",
                           "-o", tmp_path / "again")
    assert code == 0, err
    assert (tmp_path / "again" / "onnx-cpu" / "model.onnx").read_bytes() == (out / "onnx-cpu" / "model.onnx").read_bytes()
    # `edgec verify` re-runs the check against the ONNX model (no lowering needed either).
    code, _, err = run_cli("verify", out / "onnx-cpu")
    assert code == 0 and json.loads((out / "onnx-cpu" / "verify.json").read_text())["passed"], err
    # A TFLite Micro target needs the lowering, which does not cover Softplus: one clear line, exit 2.
    code, _, err = run_cli("compile", tmp_path / "m.onnx", "-t", "cortex-m4", "--calibration",
                           tmp_path / "calib.npz", "-o", tmp_path / "out_m4")
    assert code == 2 and "operator Softplus is not supported by the ONNX lowering" in err
    assert "Traceback" not in err and not (tmp_path / "out_m4" / "cortex-m4").exists()


def test_graph_output_softmax_and_its_reshape_stay_float_and_unnamed_nodes_get_names():
    """Only a Softmax that is a graph output (possibly through layout-only ops) is kept out of int8;
    fusion names unnamed nodes, since ONNX Runtime excludes nodes by name (an empty one matches all)."""
    from edgec.frontend.onnx import fuse as onnx_fuse
    from edgec.quantize.keep_float_onnx import range_fixed_outputs

    n = helper.make_node
    nodes = [n("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             n("Softmax", ["c1"], ["attention"], axis=1),  # inside the graph: quantized as ORT does
             n("Mul", ["c1", "attention"], ["m"]),
             n("GlobalAveragePool", ["m"], ["gap"]),
             n("Flatten", ["gap"], ["flat"]),
             n("Softmax", ["flat"], ["prob"]),
             n("Reshape", ["prob", "shape"], ["y"])]
    inits = [_w("w1", 8, 3, 3, 3), _w("b1", 8), _ints("shape", [1, 8])]
    graph = helper.make_graph(nodes, "g", [_value("x", 1, 3, 8, 8)], [_value("y", 1, 8)], inits)
    model, _ = onnx_fuse.fuse(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    names = [node.name for node in model.graph.node]
    assert all(names) and len(set(names)) == len(names), names
    kept = range_fixed_outputs(model)
    assert [model.graph.node[names.index(k)].op_type for k in kept] == ["Softmax", "Reshape"], kept
    assert model.graph.node[names.index(kept[0])].output[0] == "prob"


def test_openvino_uses_fast_bias_correction_above_the_layer_cap(run_cli, tmp_path):
    """NNCF's full bias correction runs a subgraph per layer and sample (DenseNet-121: over 14 minutes);
    past FULL_BIAS_CORRECTION_MAX_LAYERS weighted layers the fast one runs and the report says so."""
    from edgec.backends.openvino.nncf_quantize import FULL_BIAS_CORRECTION_MAX_LAYERS

    n = helper.make_node
    layers = FULL_BIAS_CORRECTION_MAX_LAYERS + 1
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (np.eye(8) + rng.normal(0, 0.1, (8, 8))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), f"b{i}")]
        nodes += [n("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"mm{i}"), n("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"add{i}"),
                  n("Tanh", [f"a{i}"], [f"t{i}"], name=f"tanh{i}")]
        x = f"t{i}"
    graph = helper.make_graph(nodes, "deep", [_value("x", 1, 8)], [_value(x, 1, 8)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "deep.onnx"))
    np.save(tmp_path / "calib.npy", rng.normal(size=(16, 8)).astype(np.float32))
    code, _, err = run_cli("compile", tmp_path / "deep.onnx", "-t", "intel-cpu", "--calibration", tmp_path / "calib.npy",
                           "-o", tmp_path / "out")
    assert "Traceback" not in err
    report = json.loads((tmp_path / "out" / "intel-cpu" / "report.json").read_text())
    assert report["openvino"]["bias_correction"] == "fast", report["openvino"]
    assert code == 0 and report["verification"]["passed"], err


def _zoo_photos(count: int) -> np.ndarray:
    """Real photos (scikit-learn's two samples), 224x224 crops, ImageNet-normalized, NCHW."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        img = load_sample_images().images[i % 2]
        size = int(rng.integers(200, 420))
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        idx = np.arange(224) * size // 224
        crop = img[y + idx][:, x + idx] / 255.0
        out.append(((crop - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


@pytest.mark.skipif(not (ZOO / "light_squeezenet.onnx").is_file(), reason="onnx wheel without its light zoo")
def test_light_zoo_squeezenet_compiles_for_onnx_runtime_and_openvino(run_cli, tmp_path):
    """The onnx wheel's SqueezeNet (opset 9, ConstantOfShape weights) for onnx-cpu and intel-cpu.

    Both artifacts are built from the zoo's own graph (no tf2onnx) and are int8 (QDQ nodes /
    FakeQuantize ops). The light zoo's weights are synthetic, so the 1000-way softmax is flat (every
    probability near 1e-3). ONNX Runtime's quantizer fixes a Softmax output's range to [0, 1] (step
    1/255), which rounds every probability to 0 (cosine 0), so the graph-output Softmax (and the
    Reshape after it) stays float for onnx-cpu and the report names them; OpenVINO keeps it as is.
    """
    np.savez(tmp_path / "photos.npz", data_0=_zoo_photos(12))
    out = tmp_path / "out"
    code, _, err = run_cli("compile", ZOO / "light_squeezenet.onnx", "-t", "onnx-cpu", "-t", "intel-cpu",
                           "--calibration", tmp_path / "photos.npz", "-o", out)
    assert code == 0, err
    from edgec.backends.openvino.export_openvino import fake_quantize_count

    assert fake_quantize_count(out / "intel-cpu" / "model.xml") > 0
    shipped = onnx.load(str(out / "onnx-cpu" / "model.onnx"))
    assert sum(node.op_type == "QuantizeLinear" for node in shipped.graph.node) > 20
    # The output is float probabilities straight from a float Softmax: no QDQ pair after it.
    producers = {o: node for node in shipped.graph.node for o in node.output}
    tail = producers[shipped.graph.output[0].name]
    assert tail.op_type == "Reshape" and producers[tail.input[0]].op_type == "Softmax"
    for target in ("onnx-cpu", "intel-cpu"):
        report = json.loads((out / target / "report.json").read_text())
        v = report["verification"]
        assert v["passed"] and v["samples"] == 3 and v["max_abs_err"] < 0.01 and v["cosine"] > 0.99, v
        assert "ConstantOfShape" not in json.dumps(report.get("onnx", {}))
    kept = json.loads((out / "onnx-cpu" / "report.json").read_text())["onnx"]["float_outputs"]["nodes"]
    assert [producers[shipped.graph.output[0].name].name] == kept[1:] and len(kept) == 2, kept
