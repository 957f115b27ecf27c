"""What running TFLite Micro in edgec's worker process (edgec/core/isolate.py) costs, against in-process.

For the int8 digits example (or ``--tflite FILE``): the first call (starting the worker: Python, NumPy,
the tflite-micro extension), then per call of ``run_tflm`` on N samples, in the worker and in this
process (edgec.runtimes.tflm's own in-process body), alternating, median of ``--rounds``.

    python tools/bench_native_worker.py [--samples 50] [--rounds 10] [--tflite FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _digits_int8() -> tuple[bytes, np.ndarray]:
    from edgec.quantize import converter as quantize
    from edgec.core.tf import keras

    model = keras().models.load_model(ROOT / "edgec" / "examples" / "digits_cnn.keras", compile=False)
    images = np.load(ROOT / "calibration" / "digits" / "calibration.npz")["image"]
    name = model.inputs[0].name.split(":")[0]
    return quantize.int8_tflite(model, {name: images[:64]}), images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--tflite", type=Path)
    args = p.parse_args()
    from edgec.core import isolate
    from edgec.runtimes import tflm as tflm_run
    from edgec.runtimes.base import quantize_samples

    if args.tflite:
        tflite = args.tflite.read_bytes()
        shape = tflm_run._io_details(tflite)[0][0]["shape"]
        images = np.random.RandomState(0).rand(args.samples, *shape[1:]).astype(np.float32)
    else:
        tflite, images = _digits_int8()
    samples = quantize_samples(tflite, [images[:args.samples]])
    isolate.shutdown()
    t = time.perf_counter()
    tflm_run.run_tflm(tflite, samples[:1])
    first = time.perf_counter() - t
    worker, local = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        a = tflm_run.run_tflm(tflite, samples)
        worker.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = tflm_run._run(tflite, samples)
        local.append(time.perf_counter() - t)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))  # same outputs either way
    result = {"model_bytes": len(tflite), "samples": len(samples), "first_call_s": round(first, 3),
              "worker_call_ms_p50": round(1000 * statistics.median(worker), 1),
              "in_process_call_ms_p50": round(1000 * statistics.median(local), 1)}
    result["overhead_ms_p50"] = round(result["worker_call_ms_p50"] - result["in_process_call_ms_p50"], 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
