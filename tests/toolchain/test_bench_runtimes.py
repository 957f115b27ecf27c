"""`edgec bench`: artifact and float reference timed in the same runtime, in one run, into bench.json."""

import json

import pytest

from edgec.runtimes import bench
from edgec.core.errors import InputError

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def tflite_pair(tmp_path_factory):
    from edge_models_support import keras_cnn, tflite

    folder = tmp_path_factory.mktemp("bench")
    model = keras_cnn()
    (folder / "model.tflite").write_bytes(tflite(model, int8=True))
    (folder / "model_float.tflite").write_bytes(tflite(model, int8=False))
    return folder / "model.tflite", folder / "model_float.tflite"


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    from edge_models_support import onnx_mlp, onnx_qdq

    folder = tmp_path_factory.mktemp("bench_onnx")
    ref = onnx_mlp(folder / "float.onnx")
    return onnx_qdq(ref, folder / "model.onnx"), ref


def _check(result, artifact, runs):
    for key in ("artifact", "reference"):
        r = result[key]
        assert r["runs"] == runs and 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["throughput_per_s"] == pytest.approx(1e3 / r["p50_ms"], rel=1e-2)
    assert result["speedup"] == pytest.approx(result["reference"]["p50_ms"] / result["artifact"]["p50_ms"],
                                              rel=1e-2)
    assert json.loads((artifact.parent / "bench.json").read_text()) == result


def test_litert_bench_times_int8_and_float_reference_and_measures_memory(tflite_pair):
    artifact, reference = tflite_pair
    result = bench.bench(artifact, reference, "litert", runs=40, warmup=5)
    _check(result, artifact, 40)
    assert result["runtime"] == "litert" and result["reference"]["path"] == "model_float.tflite"
    # A fresh process loading a 10-class CNN in LiteRT grows by more than 0 and less than 200 MiB.
    for key in ("artifact", "reference"):
        assert 0 < result[key]["peak_memory_bytes"] < 200 * 2**20
    text = bench.table(result)
    assert "speedup (reference p50 / artifact p50)" in text and "model_float.tflite" in text


def test_tflm_bench_runs_the_micro_interpreter(tflite_pair):
    from edgec.core.errors import ToolchainError
    from edgec.backends.tflm.slim import slim

    artifact, reference = tflite_pair
    # One zero point shared by all channels: TFLite Micro reads it, LiteRT refuses to load it. So
    # benching this file succeeds only if the micro interpreter is the one that runs it.
    slimmed = artifact.parent / "slim.tflite"
    slimmed.write_bytes(slim(artifact.read_bytes())[0])
    with pytest.raises(ToolchainError, match="litert could not load slim.tflite: QuantizationParam has 1 zero_point"):
        bench.bench(slimmed, reference, "litert", runs=2, warmup=0, memory=False, out=artifact.parent / "x.json")
    result = bench.bench(slimmed, reference, "tflm", runs=10, warmup=2, memory=False,
                         out=artifact.parent / "tflm.json")
    assert result["runtime"] == "tflm" and result["artifact"]["path"] == "slim.tflite"
    assert result["artifact"]["runs"] == 10 and result["artifact"]["peak_memory_bytes"] is None
    assert result["speedup"] == pytest.approx(result["reference"]["p50_ms"] / result["artifact"]["p50_ms"], rel=1e-2)


def test_onnxruntime_and_openvino_bench_the_qdq_model_against_float(onnx_pair, tmp_path):
    from edge_models_support import openvino_from_onnx

    artifact, reference = onnx_pair
    result = bench.bench(artifact, reference, "onnxruntime", runs=30, warmup=3, memory=False)
    _check(result, artifact, 30)
    ov_art = openvino_from_onnx(artifact, tmp_path / "model.xml")
    ov_ref = openvino_from_onnx(reference, tmp_path / "float.xml")
    result = bench.bench(ov_art, ov_ref, "openvino", runs=30, warmup=3, memory=False)
    _check(result, ov_art, 30)


def test_bench_refuses_unknown_runtime_and_missing_files(tflite_pair, tmp_path):
    artifact, reference = tflite_pair
    with pytest.raises(InputError, match="unknown runtime 'tensorrt'"):
        bench.bench(artifact, reference, "tensorrt")
    with pytest.raises(InputError, match="no model file"):
        bench.bench(tmp_path / "none.tflite", reference, "litert")
    with pytest.raises(InputError, match="runs and threads must be >= 1"):
        bench.bench(artifact, reference, "litert", runs=0)


def test_bench_build_reads_the_format_and_benches_against_the_kept_float_model(tflite_pair, tmp_path):
    import shutil

    artifact, reference = tflite_pair
    build = tmp_path / "raspberry-pi-4"
    (build / "intermediate").mkdir(parents=True)
    shutil.copy(artifact, build / "model.tflite")
    shutil.copy(reference, build / "intermediate" / "model_float.tflite")
    (build / "report.json").write_text(json.dumps({"format": "litert"}))
    result = bench.bench_build(build, runs=20, warmup=2)
    assert result["runtime"] == "litert" and result["reference"]["path"] == "model_float.tflite"
    assert json.loads((build / "bench.json").read_text())["speedup"] == result["speedup"]
    (build / "report.json").write_text(json.dumps({"format": "c"}))
    with pytest.raises(InputError, match="format 'c' has no host runtime"):
        bench.bench_build(build)
    with pytest.raises(InputError, match="not an edgec build folder"):
        bench.bench_build(tmp_path)


def test_bench_build_in_litert_times_the_unslimmed_model_of_a_tflite_micro_build(tflite_pair, tmp_path):
    import shutil

    from edgec.backends.tflm.slim import slim

    artifact, reference = tflite_pair
    build = tmp_path / "cortex-m4"
    (build / "intermediate").mkdir(parents=True)
    (build / "model.tflite").write_bytes(slim(artifact.read_bytes())[0])  # LiteRT cannot read it
    shutil.copy(reference, build / "intermediate" / "model_float.tflite")
    (build / "report.json").write_text(json.dumps({"format": "tflm"}))
    with pytest.raises(InputError, match="LiteRT cannot read .* is missing; recompile"):
        bench.bench_build(build, runtime="litert", runs=5, warmup=1)
    shutil.copy(artifact, build / "intermediate" / "model_int8.tflite")
    result = bench.bench_build(build, runtime="litert", runs=10, warmup=1)
    assert result["artifact"]["path"] == "model_int8.tflite" and "LiteRT cannot read model.tflite" in result["note"]
    assert bench.bench_build(build, runs=5, warmup=1)["artifact"]["path"] == "model.tflite"  # TFLite Micro reads it
