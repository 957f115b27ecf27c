"""OpenVINO's benchmark_app wrapper and the ONNX Runtime harness, run here with the real runtimes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgec.device import outputs as device_outputs
from edgec.device.harness import generate as harness

pytestmark = pytest.mark.toolchain

BENCHMARK_APP = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")


def _target(fmt, **device):
    return {"id": f"test-{fmt}", "description": "test", "format": fmt, "device": device}


@pytest.fixture(scope="module")
def onnx_build(tmp_path_factory):
    from edge_models_support import onnx_mlp

    out = tmp_path_factory.mktemp("onnx") / "jetson"
    out.mkdir()
    onnx_mlp(out / "model.onnx")
    inputs = np.random.default_rng(5).normal(size=(12, 16)).astype(np.float32)
    folder = harness.write_harness(out, _target("onnx", threads=1, trtexec=True,
                                                providers=["CPUExecutionProvider"]), inputs={"x": inputs})
    return out, folder, inputs


def test_openvino_wrapper_runs_benchmark_app_and_parses_its_json_report(tmp_path):
    from edge_models_support import onnx_mlp, openvino_from_onnx

    out = tmp_path / "intel-cpu"
    out.mkdir()
    openvino_from_onnx(onnx_mlp(tmp_path / "f.onnx"), out / "model.xml")
    folder = harness.write_harness(out, _target("openvino", device_string="CPU", threads=1))
    done = subprocess.run([sys.executable, str(folder / "run_benchmark_app.py"), "--runs", "40",
                           "--benchmark-app", BENCHMARK_APP], cwd=folder, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    bench = json.loads((folder / "bench.json").read_text())
    a = bench["artifact"]
    assert a["runs"] == 40 and 0 < a["min_ms"] <= a["p50_ms"] <= a["max_ms"] and a["throughput_per_s"] > 0
    assert a["p90_ms"] is None and a["null_reasons"]["p90_ms"]
    assert (folder / "benchmark_app_report" / "benchmark_report.json").is_file()


def test_openvino_wrapper_command_line(tmp_path):
    out = tmp_path / "ov"
    out.mkdir()
    folder = harness.write_harness(out, _target("openvino", device_string="NPU", threads=2))
    done = subprocess.run([sys.executable, str(folder / "run_benchmark_app.py"), "--dry-run",
                           "--benchmark-app", "benchmark_app"], capture_output=True, text=True)
    assert done.stdout.strip() == (
        f"benchmark_app -m {folder}/../model.xml -d NPU -hint none -nstreams 1 -nthreads 2 -api sync "
        "-niter 100 -report_type no_counters -report_folder benchmark_app_report -json_stats")


def test_onnx_harness_outputs_match_onnxruntime_in_process(onnx_build):
    import onnxruntime as ort

    out, folder, inputs = onnx_build
    done = subprocess.run([sys.executable, str(folder / "run_onnxruntime.py"), "--inputs", "inputs.npz",
                           "--runs", "20"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = device_outputs.load(folder / "outputs.npz", output_shapes=[(4,)], inputs=[inputs])
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = np.concatenate([sess.run(None, {"x": inputs[i:i + 1]})[0] for i in range(len(inputs))])
    np.testing.assert_allclose(got.outputs[0], expected, rtol=0, atol=1e-6)
    assert got.runtime.startswith("onnxruntime") and "CPUExecutionProvider" in got.runtime
    bench = json.loads((folder / "bench.json").read_text())
    assert bench["artifact"]["runs"] == 20 and bench["artifact"]["p50_ms"] > 0


def test_jetson_onnx_harness_has_the_trtexec_int8_line(onnx_build):
    _, folder, _ = onnx_build
    script = (folder / "run_trtexec.sh").read_text()
    assert '"$TRTEXEC" --onnx="$HERE/../model.onnx" --int8 --fp16 --iterations=100' in script
    assert "run_trtexec.sh" in (folder / "README.md").read_text()
