"""The ``harness/`` folder of a build: scripts that benchmark and check the artifact on the device.

Templates live in ``edgec/device/harness/templates/`` (package data) and are filled with the target's
values by plain ``@@NAME@@`` substitution, so the generated files are byte-identical for the same
build. Which harness a target gets is ``device.harness`` in its profile, else follows ``format``:

- ``android-adb``: ``run_android.sh`` pushes the models with adb and runs TFLite's ``benchmark_model``
  (int8 with XNNPACK; the fp16 model on the GPU delegate when ``device.gpu_delegate``), then
  ``parse_benchmark_model.py`` turns the output into ``bench.json``.
- ``linux-litert``: ``run_litert.py`` (stdlib + numpy; ``ai_edge_litert``, else ``tflite_runtime``)
  times the model and runs ``inputs.npz``, writing outputs for ``edgec verify --outputs``.
- ``openvino``: ``run_benchmark_app.py`` wraps ``benchmark_app`` and reads its JSON report.
- ``onnxruntime``: ``run_onnxruntime.py``; with ``device.trtexec`` also ``run_trtexec.sh`` (Jetson).
"""

from __future__ import annotations

import logging
import shlex
from importlib import resources
from pathlib import Path

import numpy as np

from edgec.core.errors import InputError
from edgec.core.formats import FORMATS
from edgec.device.outputs import write_npz

log = logging.getLogger(__name__)

RUNS = 100
WARMUP = 10
ANDROID_DIR = "/data/local/tmp/edgec"
DEFAULT_HARNESS = {name: f.harness for name, f in FORMATS.items() if f.harness}

# Android variants: (name, model file at the build's top level, benchmark_model flags).
# "float" is the float reference, timed in the same session so bench.json can give the ratio.
_ANDROID_VARIANTS = (
    ("int8", "model.tflite", "--use_xnnpack=true --num_threads=$THREADS"),
    ("fp16", "model_fp16.tflite", "--use_xnnpack=true --num_threads=$THREADS"),
    ("float", "model_float.tflite", "--use_xnnpack=true --num_threads=$THREADS"),
)
_GPU_VARIANT = ("fp16-gpu", "model_fp16.tflite", "--use_gpu=true --gpu_precision_loss_allowed=true")


def _template(name: str) -> str:
    return resources.files("edgec.device.harness").joinpath("templates", name).read_text()


def _fill(name: str, values: dict[str, object]) -> str:
    text = _template(name)
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    if "@@" in text:
        raise RuntimeError(f"harness template {name}: unfilled placeholder")  # a bug in this module
    return text


def _write(folder: Path, name: str, text: str, executable: bool = False) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)
    return path


def _values(target: dict, **extra) -> dict[str, object]:
    device = target.get("device", {})
    return {"TARGET": target["id"], "RUNS": RUNS, "WARMUP": WARMUP, "THREADS": device.get("threads", 1),
            **extra}


def _android(out: Path, folder: Path, target: dict) -> list[Path]:
    variants = [v for v in _ANDROID_VARIANTS if (out / v[1]).is_file()]
    if target.get("device", {}).get("gpu_delegate") and (out / _GPU_VARIANT[1]).is_file():
        variants.insert(1, _GPU_VARIANT)
    if not variants or variants[0][0] != "int8":
        raise InputError(f"android harness: no model.tflite in {out}", stage="harness", target=target["id"])
    pushed = sorted({v[1] for v in variants})
    pushes = "\n".join(f'run "$ADB" push "$MODELS/{m}" "$DEVICE_DIR/{m}"' for m in pushed)
    benches = "\n".join(f"bench {name} {model} {flags}" for name, model, flags in variants)
    values = _values(target, DEVICE_DIR=ANDROID_DIR, PUSHES=pushes, BENCHES=benches)
    return [_write(folder, "run_android.sh", _fill("run_android.sh", values), executable=True),
            _write(folder, "parse_benchmark_model.py", _fill("parse_benchmark_model.py", {}), True)]


def _linux(out: Path, folder: Path, target: dict) -> list[Path]:
    if not (out / "model.tflite").is_file():
        raise InputError(f"linux harness: no model.tflite in {out}", stage="harness", target=target["id"])
    return [_write(folder, "run_litert.py", _fill("run_litert.py", _values(target, MODEL="model.tflite")), True),
            _write(folder, "harness_io.py", _template("harness_io.py"))]


def _openvino(out: Path, folder: Path, target: dict) -> list[Path]:
    device = target.get("device", {}).get("device_string", "CPU")
    values = _values(target, MODEL="model.xml", DEVICE=device)
    return [_write(folder, "run_benchmark_app.py", _fill("run_benchmark_app.py", values), True)]


def _onnx(out: Path, folder: Path, target: dict) -> list[Path]:
    device = target.get("device", {})
    providers = ",".join(device.get("providers", ["CPUExecutionProvider"]))
    values = _values(target, MODEL="model.onnx", PROVIDERS=providers)
    files = [_write(folder, "run_onnxruntime.py", _fill("run_onnxruntime.py", values), True),
             _write(folder, "harness_io.py", _template("harness_io.py"))]
    if device.get("trtexec"):
        files.append(_write(folder, "run_trtexec.sh", _fill("run_trtexec.sh", values), True))
    return files


HARNESSES = {"android-adb": _android, "linux-litert": _linux, "openvino": _openvino, "onnxruntime": _onnx}


def harness_kind(target: dict) -> str | None:
    """The harness a target gets: ``device.harness``, else the default for its format, else None."""
    kind = target.get("device", {}).get("harness") or DEFAULT_HARNESS.get(target.get("format", ""))
    if kind is not None and kind not in HARNESSES:
        raise InputError(f"unknown device.harness '{kind}' (known: {', '.join(HARNESSES)})",
                         stage="harness", target=target.get("id"))
    return kind


def write_harness(out: Path, target: dict, *, inputs: dict[str, np.ndarray] | None = None) -> Path | None:
    """Write ``out/harness/`` for ``target`` from the artifacts already at ``out``'s top level.

    ``inputs`` (model input name -> float samples, batch first), when given, are written as
    ``harness/inputs.npz`` for the scripts that capture outputs. Returns the folder, or None when
    the target has no host-side harness (microcontroller targets get firmware instead).
    """
    kind = harness_kind(target)
    if kind is None:
        return None
    folder = Path(out) / "harness"
    folder.mkdir(parents=True, exist_ok=True)
    files = HARNESSES[kind](Path(out), folder, target)
    if inputs is not None and kind in ("linux-litert", "onnxruntime"):
        write_npz(folder / "inputs.npz", {k: np.asarray(v, np.float32) for k, v in inputs.items()})
        files.append(folder / "inputs.npz")
    _write(folder, "README.md", _readme(target, kind, [f.name for f in files]))
    log.info("harness: %s for %s (%s)", kind, target["id"], ", ".join(f.name for f in files))
    return folder


_USAGE = {
    "android-adb": "BENCHMARK_MODEL=/path/to/android_aarch64_benchmark_model ./run_android.sh\n"
                   "DRY_RUN=1 ./run_android.sh    # print the adb commands only",
    "linux-litert": "python3 run_litert.py --inputs inputs.npz --outputs outputs.npz\n"
                    "edgec verify OUT/ID --outputs outputs.npz    # back on the host",
    "openvino": "python3 run_benchmark_app.py --device CPU",
    "onnxruntime": "python3 run_onnxruntime.py --inputs inputs.npz --outputs outputs.npz",
}


def _readme(target: dict, kind: str, files: list[str]) -> str:
    lines = [f"# Device harness for {target['id']} ({kind})", "", "Copy this build folder to the device, "
             "then from `harness/`:", "", "```", _USAGE[kind]]
    if "run_trtexec.sh" in files:
        lines.append("./run_trtexec.sh    # TensorRT int8 engine and its timings")
    lines += ["```", "", "Each run writes `bench.json` (p50/p90/p99 ms, throughput). Output files follow the "
              "layout in `harness_io.py`.", "", "Files: " + ", ".join(shlex.quote(f) for f in files), ""]
    return "\n".join(lines)
