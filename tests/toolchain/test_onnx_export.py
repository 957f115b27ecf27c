"""ONNX (QDQ INT8) and OpenVINO IR (FP32/FP16/INT8) exporters on the digits example, in the real runtimes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from edgec.backends.onnx import export_onnx
from edgec.backends.openvino import export_openvino
from edgec.core import targets
from edgec.core.errors import InputError
from edgec.frontend.onnx import lower as onnx_lower
from edgec.frontend.onnx import read as load_onnx
from edgec.quantize.spec import QuantSpec
from edgec.runtimes import onnxruntime as runtimes_onnx
from edgec.runtimes.openvino import predict_openvino

pytestmark = pytest.mark.toolchain

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "edgec" / "examples" / "digits_cnn.keras"
INPUTS = {"image": ((8, 8, 1), "float32")}


@pytest.fixture(scope="module")
def digits():
    from edgec.core.calibration_load import open_dataset
    from edgec.core.tf import keras

    model = keras().models.load_model(DIGITS)
    calibration = open_dataset(ROOT / "calibration/digits/calibration.npz", INPUTS)
    evaluation = open_dataset(ROOT / "calibration/digits/eval.npz", INPUTS)
    images = evaluation.arrays()["image"]
    reference = model.predict(images, verbose=0)
    return SimpleNamespace(model=model, calibration=calibration, images=images, labels=evaluation.labels,
                           reference=reference, float_top1=float((reference.argmax(1) == evaluation.labels).mean()))


def _build(digits, tmp_path: Path, target_id: str, **quantization) -> SimpleNamespace:
    target = targets.resolve(target_id)
    target["quantization"].update(quantization)
    out = tmp_path / target_id
    out.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(target=target, keras_model=digits.model, calibration=digits.calibration,
                           evaluation=None, out=out, work=out / "intermediate",
                           quant=QuantSpec.from_settings({}, target), report={})


def _top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((outputs.argmax(1) == labels).mean())


def test_onnx_int8_artifact_is_qdq_per_channel_and_within_one_point_of_float(digits, tmp_path):
    build = _build(digits, tmp_path, "onnx-cpu")
    export_onnx.export(build)
    artifact = build.out / "model.onnx"
    model = onnx.load(str(artifact))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    # per-channel weights: a DequantizeLinear with a vector scale on the first conv's weights
    scales = [len(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer
              if t.name.endswith("_scale") and t.dims]
    assert max(scales) >= 32
    outputs = runtimes_onnx.predict_onnxruntime(artifact, {"image": digits.images})[0]
    top1 = _top1(outputs, digits.labels)
    assert abs(top1 - digits.float_top1) <= 0.01, (top1, digits.float_top1)
    assert build.report["onnx"]["calibration_method"] == "minmax"
    assert build.report["size"]["artifact_bytes"] < build.report["size"]["float_onnx_bytes"] / 2


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_onnx_int8_calibration_methods_are_selectable(digits, tmp_path, method):
    build = _build(digits, tmp_path, "onnx-cpu", calibration_method=method)
    export_onnx.export(build)
    outputs = runtimes_onnx.predict_onnxruntime(build.out / "model.onnx", {"image": digits.images[:200]})[0]
    assert build.report["onnx"]["calibration_method"] == method
    assert _top1(outputs, digits.labels[:200]) >= digits.float_top1 - 0.03


def test_unknown_calibration_method_is_a_config_error(digits, tmp_path):
    with pytest.raises(InputError, match="calibration method 'median' is unknown"):  # before any export
        _build(digits, tmp_path, "onnx-cpu", calibration_method="median")


def test_onnx_int8_artifact_is_byte_identical_across_runs(digits, tmp_path):
    digests = []
    for run in range(2):
        build = _build(digits, tmp_path / str(run), "onnx-cpu")
        export_onnx.export(build)
        digests.append(hashlib.sha256((build.out / "model.onnx").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_openvino_int8_ir_has_fake_quantize_and_is_within_one_point_of_float(digits, tmp_path):
    build = _build(digits, tmp_path, "intel-cpu")
    export_openvino.export(build)
    xml = build.out / "model.xml"
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert export_openvino.fake_quantize_count(xml) >= 4
    outputs = predict_openvino(xml, {"image": digits.images})[0]
    top1 = _top1(outputs, digits.labels)
    assert abs(top1 - digits.float_top1) <= 0.01, (top1, digits.float_top1)
    first = hashlib.sha256(xml.with_suffix(".bin").read_bytes()).hexdigest()
    again = _build(digits, tmp_path / "again", "intel-cpu")
    export_openvino.export(again)
    assert hashlib.sha256((again.out / "model.bin").read_bytes()).hexdigest() == first


def test_openvino_fp16_ir_stores_half_weights_and_fp32_ir_matches_keras(digits, tmp_path):
    fp16 = _build(digits, tmp_path, "intel-gpu")
    export_openvino.export(fp16)
    assert fp16.report["openvino"]["device"] == "GPU"
    assert "f16" in export_openvino.weight_dtypes(fp16.out / "model.xml")
    fp32 = _build(digits, tmp_path / "fp32", "intel-cpu", scheme="fp32")
    export_openvino.export(fp32)
    assert "f16" not in export_openvino.weight_dtypes(fp32.out / "model.xml")
    assert export_openvino.fake_quantize_count(fp32.out / "model.xml") == 0
    half = predict_openvino(fp16.out / "model.xml", {"image": digits.images[:100]})[0]
    full = predict_openvino(fp32.out / "model.xml", {"image": digits.images[:100]})[0]
    np.testing.assert_allclose(full, digits.reference[:100], atol=1e-5)
    np.testing.assert_allclose(half, digits.reference[:100], atol=5e-3)
    assert fp16.report["size"]["bin_bytes"] < 0.6 * fp32.report["size"]["bin_bytes"]


def test_runtimes_accept_nchw_samples_for_an_nhwc_model(digits, tmp_path):
    build = _build(digits, tmp_path, "onnx-cpu", scheme="fp32")
    export_onnx.export(build)
    nhwc = runtimes_onnx.predict_onnxruntime(build.out / "model.onnx", {"image": digits.images[:10]})[0]
    nchw = runtimes_onnx.predict_onnxruntime(build.out / "model.onnx",
                                             {"image": digits.images[:10].transpose(0, 3, 1, 2)})[0]
    np.testing.assert_array_equal(nhwc, nchw)
    np.testing.assert_allclose(nhwc, digits.reference[:10], atol=1e-5)
    with pytest.raises(InputError, match="do not fit"):
        runtimes_onnx.predict_onnxruntime(build.out / "model.onnx", {"image": digits.images[:2, :4]})


def test_digits_through_tf2onnx_lowers_back_to_keras_matching_onnx_runtime(digits, tmp_path):
    path = tmp_path / "digits.onnx"
    onnx.save(export_onnx.keras_to_onnx(digits.model), str(path))
    model = load_onnx.read(path)
    lowered = onnx_lower.lower(model)
    assert onnx_lower.check(model, lowered, {"image": digits.images[:32]})["max_rel_err"] <= 1e-4
    assert (lowered.predict(digits.images, verbose=0).argmax(1) == digits.reference.argmax(1)).all()


def test_onnx_input_model_exports_int8_for_intel_cpu_and_onnx_cpu_agreeing_with_the_original(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)

    def w(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.4).astype(np.float32), name)

    n = helper.make_node
    graph = helper.make_graph(
        [n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
         n("Relu", ["c1"], ["r1"], name="relu1"),
         n("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         n("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
         n("Relu", ["c2"], ["r2"], name="relu2"),
         n("GlobalAveragePool", ["r2"], ["g"], name="gap"),
         n("Flatten", ["g"], ["f"], name="flatten"),
         n("Gemm", ["f", "wf", "bf"], ["y"], name="fc")],
        "nchw_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [w("w1", 8, 3, 3, 3), w("b1", 8), w("w2", 16, 8, 3, 3), w("b2", 16), w("wf", 16, 6), w("bf", 6)])
    path = tmp_path / "nchw.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    loaded = load_onnx.load(path)
    assert loaded.inputs == {"x": ((3, 16, 16), "float32")} and loaded.kind == "onnx"
    samples = rng.uniform(0, 1, (160, 3, 16, 16)).astype(np.float32)
    reference = onnx_lower.run_onnx(loaded.onnx_model, {"x": samples[100:]})[0]
    for target_id, exporter, run, name in (
            ("onnx-cpu", export_onnx, runtimes_onnx.predict_onnxruntime, "model.onnx"),
            ("intel-cpu", export_openvino, predict_openvino, "model.xml")):
        out = tmp_path / target_id
        out.mkdir()
        target = targets.resolve(target_id)
        build = SimpleNamespace(target=target, keras_model=loaded.keras_model,
                                calibration={"x": samples[:100]}, out=out, work=out / "intermediate",
                                quant=QuantSpec.from_settings({}, target), report={})
        exporter.export(build)
        got = run(out / name, {"x": samples[100:]})[0]
        cosine = float((got * reference).sum() / np.linalg.norm(got) / np.linalg.norm(reference))
        agreement = float((got.argmax(1) == reference.argmax(1)).mean())
        assert cosine >= 0.99 and agreement >= 0.9, (target_id, cosine, agreement)
