"""The Android harness: the exact adb / benchmark_model commands, and parsing benchmark_model's output."""

import json
import subprocess
import sys

import pytest

from edgec.device.harness import generate as harness
from edgec.core import targets

pytestmark = pytest.mark.toolchain

# benchmark_model's output format (TFLite tools/benchmark): warm-up stats line, timed-run stats line
# with percentiles, the timings summary and the memory lines. Microseconds.
OUTPUT = """INFO: STARTING!
INFO: Num runs: [100]
INFO: Graph: [/data/local/tmp/edgec/model.tflite]
INFO: Num threads: [4]
INFO: Use xnnpack: [1]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: Replacing 7 out of 7 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 0.098496
INFO: Initialized session in 3.214ms.
INFO: Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=2103 first=401 curr=225 min=209 max=1014 avg=233.582 std=39 p5=215 median=228 p95=260

INFO: Running benchmark for at least 100 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=4283 first=238 curr=232 min=208 max=505 avg=232.459 std=15 p5=214 median=230 p95=251

INFO: Inference timings in us: Init: 3214, First inference: 401, Warmup (avg): 233.582, Inference (avg): 232.459
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.4375 overall=5.625
"""


@pytest.fixture()
def android_build(tmp_path):
    out = tmp_path / "android-arm64"
    out.mkdir()
    for name in ("model.tflite", "model_fp16.tflite"):
        (out / name).write_bytes(b"TFL3 stand-in: the script only pushes it")
    return out, harness.write_harness(out, targets.resolve("android-arm64"))


def test_android_script_runs_benchmark_model_with_the_targets_flags(android_build):
    out, folder = android_build
    done = subprocess.run(["sh", str(folder / "run_android.sh")], env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, done.stderr
    d = "/data/local/tmp/edgec"
    assert done.stdout.splitlines() == [
        f"adb shell mkdir -p {d}",
        f"adb push {folder}/benchmark_model {d}/benchmark_model",
        f"adb shell chmod 755 {d}/benchmark_model",
        f"adb push {out}/model.tflite {d}/model.tflite",
        f"adb push {out}/model_fp16.tflite {d}/model_fp16.tflite",
        f"adb shell {d}/benchmark_model --graph={d}/model.tflite --num_runs=100 --warmup_runs=10 "
        "--use_xnnpack=true --num_threads=4",
        f"adb shell {d}/benchmark_model --graph={d}/model_fp16.tflite --num_runs=100 --warmup_runs=10 "
        "--use_gpu=true --gpu_precision_loss_allowed=true",
        f"adb shell {d}/benchmark_model --graph={d}/model_fp16.tflite --num_runs=100 --warmup_runs=10 "
        "--use_xnnpack=true --num_threads=4",
        f"python3 {folder}/parse_benchmark_model.py --out bench.json int8=benchmark_int8.txt "
        "fp16-gpu=benchmark_fp16-gpu.txt fp16=benchmark_fp16.txt",
    ]


def test_android_script_overrides_threads_and_runs_from_the_environment(android_build):
    _, folder = android_build
    env = {"DRY_RUN": "1", "PATH": "/usr/bin:/bin", "THREADS": "2", "RUNS": "7", "ADB": "/opt/adb",
           "ANDROID_SERIAL": "x"}
    done = subprocess.run(["sh", str(folder / "run_android.sh")], env=env, capture_output=True, text=True)
    assert any(line.startswith("/opt/adb shell ") and line.endswith("--num_runs=7 --warmup_runs=10 "
                                                                    "--use_xnnpack=true --num_threads=2")
               for line in done.stdout.splitlines())


def test_android_script_without_benchmark_model_binary_is_exit_2(android_build):
    _, folder = android_build
    done = subprocess.run(["sh", str(folder / "run_android.sh")], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no benchmark_model binary" in done.stderr


def test_benchmark_model_output_is_parsed_into_bench_json(android_build, tmp_path):
    _, folder = android_build
    (tmp_path / "int8.txt").write_text(OUTPUT)
    (tmp_path / "float.txt").write_text(OUTPUT.replace("median=230", "median=690"))
    done = subprocess.run([sys.executable, str(folder / "parse_benchmark_model.py"), "--out",
                           str(tmp_path / "bench.json"), "--device", "Pixel 8",
                           f"int8={tmp_path / 'int8.txt'}", f"float={tmp_path / 'float.txt'}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bench = json.loads((tmp_path / "bench.json").read_text())
    a = bench["artifact"]
    assert (a["runs"], a["p50_ms"], a["p95_ms"], a["mean_ms"], a["min_ms"]) == (4283, 0.23, 0.251, 0.2325, 0.208)
    assert a["p90_ms"] is None and "p5/median/p95" in a["null_reasons"]["p90_ms"]
    assert a["peak_memory_bytes"] == int(5.625 * 2**20) and a["delegated_nodes"] == "7/7 TfLiteXNNPackDelegate"
    assert bench["device"] == "Pixel 8" and bench["speedup"] == 3.0


def test_failed_benchmark_model_run_is_reported_not_parsed(android_build, tmp_path):
    _, folder = android_build
    (tmp_path / "bad.txt").write_text("ERROR: Could not open '/data/local/tmp/edgec/model.tflite'.\n")
    done = subprocess.run([sys.executable, str(folder / "parse_benchmark_model.py"), "--out",
                           str(tmp_path / "b.json"), f"int8={tmp_path / 'bad.txt'}"], capture_output=True, text=True)
    assert done.returncode == 2 and "Could not open" in done.stderr and not (tmp_path / "b.json").exists()
