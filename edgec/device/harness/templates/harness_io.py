"""Shared by the edgec device harnesses (stdlib + numpy only; copied next to them, not imported from edgec).

Reads an input set (npz), times a model, and writes the outputs file that `edgec verify --outputs`
reads. The outputs layout (version 1) is documented in edgec/device_outputs.py:
output_k (float32, batch first, dequantized), raw_output_k, input_sha256, runtime, device, samples,
format_version, latency_ms.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

LABEL_KEYS = ("label", "labels", "y", "target", "targets")
FORMAT_VERSION = 1


def parse_args(doc, argv, *, model, runs, warmup, threads, add_options=None):
    """The options every harness takes, parsed and checked (bad values: one line, exit 2).

    ``add_options(parser)`` adds a harness's own options (e.g. ONNX Runtime's providers).
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", default=model)
    p.add_argument("--inputs", help="npz with one array per model input (batch first)")
    p.add_argument("--outputs", default="outputs.npz", help="where to write outputs (with --inputs)")
    p.add_argument("--bench", default="bench.json")
    p.add_argument("--runs", type=int, default=runs)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--threads", type=int, default=threads)
    if add_options is not None:
        add_options(p)
    args = p.parse_args(argv)
    if not os.path.isfile(args.model):
        fail("no model at %s" % args.model)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        fail("--runs and --threads must be >= 1, --warmup >= 0")
    return args


def fail(message):
    """One line on stderr, exit code 2 (bad input), like edgec itself."""
    sys.stderr.write("error: " + message + "\n")
    sys.exit(2)


def inputs_sha256(inputs):
    """Same digest as edgec.device_outputs.inputs_sha256: shape line + float32 LE bytes per input."""
    h = hashlib.sha256()
    for x in inputs:
        a = np.ascontiguousarray(x, dtype="<f4")
        h.update(("%s\n" % (tuple(int(d) for d in a.shape),)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _plain(name):
    name = name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def read_inputs(path, names):
    """Arrays of the npz at `path` in the order of the model inputs `names` (float32, batch first)."""
    if not os.path.isfile(path):
        fail("no input set at %s" % path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k not in LABEL_KEYS}
    except (OSError, ValueError) as e:
        fail("%s is not a readable npz: %s" % (path, e))
    out = []
    for name in names:
        key = name if name in arrays else _plain(name) if _plain(name) in arrays else None
        if key is None and len(names) == 1 and len(arrays) == 1:
            key = next(iter(arrays))
        if key is None:
            fail("%s has no array for model input '%s' (has: %s)" % (path, _plain(name), ", ".join(arrays)))
        out.append(np.asarray(arrays[key], dtype=np.float32))
    if len({len(a) for a in out}) != 1:
        fail("%s: inputs have different sample counts" % path)
    return out


def quantize(x, dtype, scale, zero_point):
    """Float to the model's integer input type, as the TFLite converter's QUANTIZE does."""
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return np.asarray(x, dtype=dtype)


def dequantize(y, scale, zero_point):
    """Integer output to float (identity for float outputs)."""
    if np.issubdtype(y.dtype, np.integer) and scale:
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return y.astype(np.float32)


def time_runs(invoke, runs, warmup):
    """Call `invoke` warmup times, then time `runs` calls; per-call milliseconds."""
    for _ in range(warmup):
        invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def summary(times_ms):
    """p50/p90/p99/mean/min (ms) and throughput, as in edgec's bench.json."""
    ordered = sorted(times_ms)

    def pct(p):  # linear interpolation, as numpy.percentile
        k = (len(ordered) - 1) * p / 100.0
        lo = int(k)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    p50 = pct(50)
    return {"p50_ms": round(p50, 4), "p90_ms": round(pct(90), 4), "p99_ms": round(pct(99), 4),
            "mean_ms": round(statistics.fmean(ordered), 4), "min_ms": round(ordered[0], 4),
            "throughput_per_s": round(1e3 / p50, 2) if p50 else None, "runs": len(ordered)}


def device_name():
    """Architecture, OS and host name of this device."""
    return "%s %s-%s %s" % (platform.machine(), platform.system(), platform.release(), platform.node())


def write_outputs(path, outputs, raw_outputs, inputs, runtime, latency_ms):
    """Write the outputs file (layout version 1)."""
    arrays = {"output_%d" % i: np.asarray(o, np.float32) for i, o in enumerate(outputs)}
    for i, r in enumerate(raw_outputs):
        arrays["raw_output_%d" % i] = np.asarray(r)
    arrays.update(input_sha256=np.array(inputs_sha256(inputs)), runtime=np.array(runtime),
                  device=np.array(device_name()), samples=np.array(len(inputs[0])),
                  format_version=np.array(FORMAT_VERSION), latency_ms=np.asarray(latency_ms, np.float64))
    np.savez(path, **arrays)


def write_bench(path, runtime, model, stats, extra):
    """Write bench.json for the device run (same keys as edgec bench's "artifact")."""
    result = {"runtime": runtime, "device": device_name(), "artifact": dict(stats, path=os.path.basename(model))}
    result.update(extra)
    with open(path, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    return result
