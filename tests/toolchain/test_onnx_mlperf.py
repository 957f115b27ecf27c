"""MLPerf Tiny reference models through tf2onnx -> safe load -> lowering (vs ORT) -> INT8 ONNX/OpenVINO."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from edgec.backends.onnx import export_onnx
from edgec.backends.openvino import export_openvino
from edgec.core import targets
from edgec.frontend.onnx import lower as onnx_lower
from edgec.frontend.onnx import read as load_onnx
from edgec.quantize.spec import QuantSpec
from edgec.runtimes import onnxruntime as runtimes_onnx
from edgec.runtimes.openvino import predict_openvino

from tests.conftest import MLPERF, needs_mlperf as needs_models

pytestmark = pytest.mark.toolchain


def _keras(path: Path):
    from edgec.core.tf import keras

    return keras().models.load_model(path, compile=False)


def _lowered_matches_ort(keras_model, tmp_path: Path, samples: np.ndarray):
    path = tmp_path / "model.onnx"
    onnx.save(export_onnx.keras_to_onnx(keras_model), str(path))
    model = load_onnx.read(path)
    lowered = onnx_lower.lower(model)
    name = model.graph.input[0].name
    result = onnx_lower.check(model, lowered, {name: samples})
    assert result["max_rel_err"] <= 1e-4
    # the lowered model is the original network: same predictions as the Keras source
    np.testing.assert_allclose(lowered.predict(samples, verbose=0), keras_model.predict(samples, verbose=0),
                               atol=1e-4)
    return lowered


@needs_models
@pytest.mark.parametrize("model_path", ["pretrainedResnet.h5", "kws_ref_model"])
def test_mlperf_model_lowers_through_tf2onnx_and_matches_onnx_runtime(model_path, tmp_path):
    source = _keras(MLPERF / model_path)
    shape = tuple(source.inputs[0].shape[1:])
    samples = np.random.default_rng(0).standard_normal((8, *shape)).astype(np.float32)
    lowered = _lowered_matches_ort(source, tmp_path, samples)
    # tf2onnx's NHWC<->NCHW transposes are absorbed: no Permute layer is left in the lowered model
    assert not any(type(layer).__name__ == "Permute" for layer in lowered.layers)


@needs_models
def test_wake_word_model_int8_onnx_and_openvino_keep_its_accuracy_on_real_samples(tmp_path):
    data = np.load(MLPERF / "str_ww_calibration_samples.npz")
    specs, labels = data["specs"].astype(np.float32), data["labels"]
    source = _keras(MLPERF / "str_ww_ref_model.h5")
    _lowered_matches_ort(source, tmp_path, specs)
    reference = source.predict(specs, verbose=0)
    float_top1 = float((reference.argmax(1) == labels).mean())
    name = source.input_names[0]
    for target_id, run in (("onnx-cpu", runtimes_onnx.predict_onnxruntime),
                           ("intel-cpu", predict_openvino)):
        out = tmp_path / target_id
        out.mkdir()
        target = targets.resolve(target_id)
        build = SimpleNamespace(target=target, keras_model=source,
                                calibration={name: specs}, out=out, work=out / "intermediate",
                                quant=QuantSpec.from_settings({}, target), report={})
        exporter = export_onnx if target_id == "onnx-cpu" else export_openvino
        exporter.export(build)
        artifact = out / ("model.onnx" if target_id == "onnx-cpu" else "model.xml")
        outputs = run(artifact, {name: specs})[0]
        top1 = float((outputs.argmax(1) == labels).mean())
        agreement = float((outputs.argmax(1) == reference.argmax(1)).mean())
        assert agreement >= 0.9 and top1 >= float_top1 - 0.05, (target_id, top1, float_top1, agreement)
