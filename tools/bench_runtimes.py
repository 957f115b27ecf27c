"""Host latency, float vs int8, of the digits example and the MLPerf Tiny KWS and ResNet-8 models.

For each model, in each runtime (LiteRT with XNNPACK, ONNX Runtime CPU, OpenVINO CPU), the float
model and its int8 version are timed by ``edgec.runtimes.bench.bench`` in the same run (alternating rounds),
so the ratio holds even on a loaded machine. Conversions use the real toolchains edgec uses: the
TFLite converter (full-integer int8, int8 I/O), tf2onnx + ONNX Runtime ``quantize_static`` (QDQ),
OpenVINO ``convert_model`` + ``nncf.quantize``, through edgec's own exporter functions (ONNX with
uint8 activations, the x86 default: ONNX Runtime's int8-activation QDQ ran ResNet-8 at 0.61x float).

LiteRT and ONNX Runtime also get an "int8, float stem" row: the same int8 model with the convolutions
that read the input left in float (edgec's ``--stem float``, see edgec/quantize/stem.py), as edgec ships it for
a phone (float I/O) and for ``onnx-cpu``.

The MLPerf models come without their data sets here: KWS is calibrated on seeded synthetic samples,
ResNet-8 on natural-photo crops (tools/photo_crops.py); latency does not depend on the scales.

    python tools/bench_runtimes.py [--runs 200] [--threads 1] [--models digits,kws,resnet8]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgec.runtimes import bench  # noqa: E402
from tools.photo_crops import photo_crops  # noqa: E402
from edgec.core.tf import keras, seed_everything, tensorflow  # noqa: E402

from tools.corpus.sources import MLPERF  # noqa: E402
log = logging.getLogger("bench_runtimes")


def load_models(names: list[str]) -> dict[str, tuple[object, np.ndarray, str]]:
    """name -> (tf_keras model, calibration samples, where the samples come from)."""
    K = keras()
    rng = np.random.default_rng(0)
    out = {}
    if "digits" in names:
        data = np.load(ROOT / "calibration/digits/calibration.npz")["image"]
        out["digits"] = (K.models.load_model(ROOT / "edgec/examples/digits_cnn.keras"), data[:200],
                         "calibration/digits")
    if "kws" in names:
        model = K.models.load_model(MLPERF / "kws_ref_model")
        out["kws"] = (model, rng.normal(0, 10, (100, 49, 10, 1)).astype(np.float32), "synthetic")
    if "resnet8" in names:
        model = K.models.load_model(MLPERF / "pretrainedResnet.h5")
        out["resnet8"] = (model, photo_crops(100, 0), "photo crops")
    return out


def _first_input(onnx_model) -> str:
    """Name of the ONNX model's first real input (not an initializer)."""
    weights = {t.name for t in onnx_model.graph.initializer}
    return next(i.name for i in onnx_model.graph.input if i.name not in weights)


def litert_stem(model, data: np.ndarray, folder: Path) -> Path:
    """The int8 .tflite with a float stem and float I/O, from edgec's own quantizer."""
    from edgec.quantize import converter as quantize
    from edgec.quantize import stem

    name = model.inputs[0].name.split(":")[0]
    layers = list(stem.tflite_stem((folder / "float.tflite").read_bytes()))
    raw = quantize.int8_tflite(model, {name: data}, io_dtype="float32", float_nodes=layers)
    (folder / "int8_stem.tflite").write_bytes(raw)
    return folder / "int8_stem.tflite"


def onnx_stem(data: np.ndarray, folder: Path) -> Path:
    """The int8 QDQ .onnx with the float stem, from the float .onnx of ``onnx_pair``."""
    import onnx

    from edgec.backends.onnx import export_onnx
    from edgec.quantize import stem

    fused = onnx.load(str(folder / "float.onnx"))
    q = export_onnx.quantize(fused, {_first_input(fused): data}, work=folder / "ort_stem",
                             nodes_to_exclude=list(stem.onnx_stem(fused)))
    onnx.save(q, str(folder / "int8_stem.onnx"))
    return folder / "int8_stem.onnx"


def litert_pair(model, data: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """(int8, float) .tflite files from the TFLite converter."""
    tf = tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (folder / "float.tflite").write_bytes(conv.convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([data[i:i + 1]] for i in range(len(data)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (folder / "int8.tflite").write_bytes(conv.convert())
    return folder / "int8.tflite", folder / "float.tflite"


def onnx_pair(model, data: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """(int8 QDQ, float) .onnx files via edgec's ONNX exporter functions."""
    import onnx

    from edgec.backends.onnx import export_onnx
    from edgec.frontend.onnx import fuse as onnx_fuse

    fused, _ = onnx_fuse.fuse(export_onnx.keras_to_onnx(model))
    onnx.save(fused, str(folder / "float.onnx"))
    q = export_onnx.quantize(fused, {_first_input(fused): data}, work=folder / "ort")
    onnx.save(q, str(folder / "int8.onnx"))
    return folder / "int8.onnx", folder / "float.onnx"


def openvino_pair(data: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """(int8, float) OpenVINO IR from the float ONNX file, int8 by nncf.quantize."""
    import openvino as ov

    from edgec.backends.openvino import export_openvino, nncf_quantize

    ov_model = export_openvino.onnx_to_openvino(folder / "float.onnx")
    ov.save_model(ov_model, str(folder / "float.xml"), compress_to_fp16=False)
    name = ov_model.inputs[0].get_any_name()
    q = nncf_quantize.quantize(export_openvino.onnx_to_openvino(folder / "float.onnx"), {name: data})
    ov.save_model(q, str(folder / "int8.xml"), compress_to_fp16=False)
    return folder / "int8.xml", folder / "float.xml"


def run(names: list[str], runtimes: list[str], runs: int, threads: int, memory: bool) -> list[dict]:
    """Convert and bench every (model, runtime) pair; one row per pair."""
    rows = []
    for name, (model, data, source) in load_models(names).items():
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            pairs = []  # (runtime, variant, int8 file, float file)
            t0 = time.time()
            if "litert" in runtimes:
                pairs.append(("litert", "int8", *litert_pair(model, data, folder)))
                pairs.append(("litert", "int8, float stem", litert_stem(model, data, folder), pairs[-1][3]))
            if {"onnxruntime", "openvino"} & set(runtimes):
                art, ref = onnx_pair(model, data, folder)
                if "onnxruntime" in runtimes:
                    pairs += [("onnxruntime", "int8", art, ref),
                              ("onnxruntime", "int8, float stem", onnx_stem(data, folder), ref)]
            if "openvino" in runtimes:
                pairs.append(("openvino", "int8", *openvino_pair(data, folder)))
            log.info("%s: converted in %.1f s", name, time.time() - t0)
            for runtime, variant, art, ref in pairs:
                r = bench.bench(art, ref, runtime, runs=runs, warmup=max(10, runs // 10), threads=threads,
                                out=folder / f"{runtime}.json", memory=memory)
                rows.append({"model": name, "calibration": source, "runtime": runtime, "variant": variant,
                             "float_p50_ms": r["reference"]["p50_ms"], "int8_p50_ms": r["artifact"]["p50_ms"],
                             "float_p90_ms": r["reference"]["p90_ms"], "int8_p90_ms": r["artifact"]["p90_ms"],
                             "speedup": r["speedup"], "float_bytes": r["reference"]["bytes"],
                             "int8_bytes": r["artifact"]["bytes"],
                             "float_peak_memory_bytes": r["reference"]["peak_memory_bytes"],
                             "int8_peak_memory_bytes": r["artifact"]["peak_memory_bytes"]})
                log.info("%s / %s / %s: float %.4f ms, int8 %.4f ms, %.2fx", name, runtime, variant,
                         rows[-1]["float_p50_ms"], rows[-1]["int8_p50_ms"], rows[-1]["speedup"])
    return rows


def render(rows: list[dict], threads: int) -> str:
    """The rich table printed by `make bench`."""
    import io

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Host latency, float vs int8, same run ({threads} thread(s), p50 ms)")
    for col in ("model", "runtime", "variant", "float p50", "int8 p50", "int8 speedup", "float KiB", "int8 KiB",
                "float peak MiB", "int8 peak MiB"):
        t.add_column(col, justify="left" if col in ("model", "runtime", "variant") else "right")

    def mib(v):
        return "n/a" if v is None else f"{v / 2**20:.1f}"

    for r in rows:
        t.add_row(r["model"], r["runtime"], r["variant"], f"{r['float_p50_ms']:.4f}", f"{r['int8_p50_ms']:.4f}",
                  f"{r['speedup']:.2f}x", f"{r['float_bytes'] / 1024:.0f}", f"{r['int8_bytes'] / 1024:.0f}",
                  mib(r["float_peak_memory_bytes"]), mib(r["int8_peak_memory_bytes"]))
    buf = io.StringIO()
    Console(file=buf, width=140, color_system=None).print(t)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the table, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="digits,kws,resnet8")
    p.add_argument("--runtimes", default="litert,onnxruntime,openvino")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-memory", action="store_true", help="skip the per-model peak-memory probes")
    p.add_argument("--json", type=Path, default=ROOT / "build/bench/bench_runtimes.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed_everything(0)
    rows = run(args.models.split(","), args.runtimes.split(","), args.runs, args.threads, not args.no_memory)
    sys.stdout.write(render(rows, args.threads))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "runs": args.runs, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
