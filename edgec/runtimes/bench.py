"""Host latency of an artifact and of its float reference, in the same runtime, in one run.

``bench(artifact, reference, runtime)`` loads both models in the same process and times them in
alternating rounds, so that load from other processes on a shared machine hits both alike and the
ratio stays meaningful even when the absolute numbers drift. Peak memory is measured separately, in
a fresh child process per model (``resource.getrusage`` high-water mark after loading and running
minus the mark after importing the runtime): native runtimes allocate outside Python's heap, so
``tracemalloc`` would see nothing, and a process-wide high-water mark cannot be reset in-process.

Runtimes: ``litert`` (ai_edge_litert, XNNPACK), ``tflm`` (TFLite Micro's Python interpreter, the
reference kernels), ``onnxruntime`` (CPU provider), ``openvino`` (CPU plugin).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgec.core.errors import InputError, ToolchainError
from edgec.core.formats import FORMATS
from edgec.core.tflite_model import NUMPY_TYPES, parse
from edgec.runtimes.litert import litert_readable
from edgec.runtimes.tflm import run_tflm

log = logging.getLogger(__name__)

RUNS = 200
WARMUP = 20
ROUNDS = 10
SEED = 0


class _Session:
    """A loaded model in one runtime: ``inputs`` (shape, numpy dtype) and ``run()``."""

    inputs: list[tuple[tuple[int, ...], np.dtype]]

    def feed(self, arrays: list[np.ndarray]) -> None:
        """Set the inputs once; ``run()`` then times only the inference."""
        self.arrays = arrays

    def run(self) -> None:
        """One inference on the fed inputs."""
        raise NotImplementedError


class _LiteRT(_Session):
    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)  # XNNPACK is the default
        self.it.allocate_tensors()
        self.details = self.it.get_input_details()
        self.inputs = [(tuple(d["shape"]), np.dtype(d["dtype"])) for d in self.details]

    def feed(self, arrays: list[np.ndarray]) -> None:
        # Set once, as TFLite's benchmark_model does: the interpreter's planner never reuses input
        # buffers, and a per-call set_tensor (a Python round trip and a copy) would dilute the ratio.
        for d, x in zip(self.details, arrays):
            self.it.set_tensor(d["index"], x)

    def run(self) -> None:
        self.it.invoke()


class _TFLM(_Session):
    def __init__(self, path: Path, threads: int):
        from tflite_micro.python.tflite_micro import runtime

        raw = path.read_bytes()
        model = parse(raw)
        graph = model.model.subgraphs[0]
        self.inputs = []
        for i in graph.inputs:
            t = model.tensors[i]
            self.inputs.append((tuple(t.shape), np.dtype(_tflite_dtype(t.type))))
        # Timing must run here, in-process; one inference in edgec's worker first turns an interpreter
        # abort (it happens in the constructor's Prepare) into an error instead of killing edgec.
        run_tflm(raw, [[np.zeros(s, d) for s, d in self.inputs]], stage="bench", model=str(path))
        self.it = runtime.Interpreter.from_bytes(raw)

    def run(self) -> None:
        for i, x in enumerate(self.arrays):
            self.it.set_input(x, i)
        self.it.invoke()


def _tflite_dtype(name: str):

    return NUMPY_TYPES[name]


class _ORT(_Session):
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        kinds = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
                 "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float16)": np.float16}
        self.names = [i.name for i in self.sess.get_inputs()]
        self.inputs = [(tuple(d if isinstance(d, int) else 1 for d in i.shape), np.dtype(kinds[i.type]))
                       for i in self.sess.get_inputs()]

    def feed(self, arrays: list[np.ndarray]) -> None:
        # Bind inputs once (IOBinding): sess.run() would re-wrap every numpy input on each call,
        # a per-call overhead as large as a small model's whole inference.
        self.binding = self.sess.io_binding()
        for name, x in zip(self.names, arrays):
            self.binding.bind_cpu_input(name, x)
        for out in self.sess.get_outputs():
            self.binding.bind_output(out.name, "cpu")

    def run(self) -> None:
        self.sess.run_with_iobinding(self.binding)


class _OpenVINO(_Session):
    def __init__(self, path: Path, threads: int):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        for p in model.inputs:
            if p.get_partial_shape().is_dynamic:
                model.reshape({p: [d.get_length() if d.is_static else 1 for d in p.get_partial_shape()]})
        # f32: on CPUs with AMX/AVX512-BF16 the CPU plugin would otherwise run the "float"
        # reference in bf16, and the comparison would no longer be float vs int8.
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = [(tuple(p.get_shape()), np.dtype(p.get_element_type().to_dtype()))
                       for p in self.compiled.inputs]

    def feed(self, arrays: list[np.ndarray]) -> None:
        import openvino as ov

        self.arrays = arrays  # the shared tensors point into these arrays: keep them alive
        for i, x in enumerate(arrays):
            self.request.set_input_tensor(i, ov.Tensor(x, shared_memory=True))

    def run(self) -> None:
        self.request.infer()  # inputs already set, no per-call conversion from numpy


_MODULES = {"litert": "ai_edge_litert.interpreter", "tflm": "tflite_micro.python.tflite_micro.runtime",
            "onnxruntime": "onnxruntime", "openvino": "openvino"}
SESSIONS = {"litert": _LiteRT, "tflm": _TFLM, "onnxruntime": _ORT, "openvino": _OpenVINO}


def _load(path: Path, runtime: str, threads: int) -> _Session:
    if runtime not in SESSIONS:
        raise InputError(f"unknown runtime '{runtime}' (known: {', '.join(SESSIONS)})", stage="bench")
    if not Path(path).is_file():
        raise InputError(f"no model file at {path}", stage="bench")
    try:
        session = SESSIONS[runtime](Path(path), threads)
    except (RuntimeError, ValueError) as e:
        raise ToolchainError(f"{runtime} could not load {Path(path).name}: {e}", stage="bench") from None
    rng = np.random.default_rng(SEED)
    arrays = []
    for shape, dtype in session.inputs:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype))
        else:
            arrays.append(rng.random(shape, dtype=np.float32).astype(dtype))
    session.feed(arrays)
    return session


def _stats(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(float(p50), 6), "p90_ms": round(float(p90), 6), "p99_ms": round(float(p99), 6),
            "mean_ms": round(float(ms.mean()), 6), "min_ms": round(float(ms.min()), 6),
            "throughput_per_s": round(1e3 / float(p50), 2), "runs": len(ms)}


def _time(sessions: list[_Session], runs: int, warmup: int) -> list[list[float]]:
    """Time each session ``runs`` times, in ``ROUNDS`` alternating blocks after ``warmup`` each."""
    for s in sessions:
        for _ in range(warmup):
            s.run()
    times: list[list[float]] = [[] for _ in sessions]
    rounds = max(1, min(ROUNDS, runs))
    for r in range(rounds):
        block = runs // rounds + (1 if r < runs % rounds else 0)
        for k, s in enumerate(sessions):
            for _ in range(block):
                t0 = time.perf_counter()
                s.run()
                times[k].append(time.perf_counter() - t0)
    return times


def peak_memory_bytes(path: Path, runtime: str, *, threads: int = 1) -> int | None:
    """Peak resident memory a fresh process adds to load ``path`` and run it 5 times."""
    cmd = [sys.executable, "-m", "edgec.runtimes.bench", "--memory", runtime, str(path), str(threads)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        log.warning("bench: memory probe of %s failed: %s", path, done.stderr.strip()[-300:])
        return None
    return int(done.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _memory_probe(runtime: str, path: str, threads: int) -> int:
    import importlib

    if runtime in _MODULES:  # import the runtime first so its own code is not counted
        importlib.import_module(_MODULES[runtime])
    # Import leaves a high-water mark above the steady state; reset it so that a small model's
    # load-and-run peak is not hidden under it. Fall back to getrusage where /proc is not writable.
    if _reset_peak() and _status_kib("VmRSS") is not None:
        before, peak = _status_kib("VmRSS"), lambda: _status_kib("VmHWM")
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    session = _load(Path(path), runtime, threads)
    for _ in range(5):
        session.run()
    return max(0, peak() - before) * 1024  # KiB


def _model_bytes(path: Path) -> int:
    """File size; for OpenVINO IR the .xml plus its .bin weights."""
    weights = path.with_suffix(".bin")
    extra = weights.stat().st_size if path.suffix == ".xml" and weights.is_file() else 0
    return path.stat().st_size + extra


def bench(artifact: Path, reference: Path, runtime: str, *, runs: int = RUNS, warmup: int = WARMUP,
          threads: int = 1, out: Path | None = None, memory: bool = True, note: str | None = None) -> dict:
    """Time ``artifact`` and its float ``reference`` in ``runtime``; write and return bench.json.

    Both are loaded in this process and timed in alternating rounds (same inputs shape, seeded
    random data). ``speedup`` is reference p50 / artifact p50. ``out`` defaults to
    ``artifact.parent / "bench.json"``; ``note`` (what was timed instead of the artifact) goes into it.
    """
    if runs < 1 or warmup < 0 or threads < 1:
        raise InputError(f"runs and threads must be >= 1 and warmup >= 0 (got {runs}, {threads}, {warmup})",
                         stage="bench")
    artifact, reference = Path(artifact), Path(reference)
    sessions = [_load(artifact, runtime, threads), _load(reference, runtime, threads)]
    times = _time(sessions, runs, warmup)
    result: dict = {"runtime": runtime, "threads": threads, "warmup": warmup,
                    "host": {"machine": platform.machine(), "processor": platform.processor() or None,
                             "cpu_count": os.cpu_count()}}
    if note:
        result["note"] = note
    for key, path, t in (("artifact", artifact, times[0]), ("reference", reference, times[1])):
        result[key] = {"path": path.name, "bytes": _model_bytes(path), **_stats(t),
                       "peak_memory_bytes": peak_memory_bytes(path, runtime, threads=threads) if memory
                       else None}
    result["speedup"] = round(result["reference"]["p50_ms"] / result["artifact"]["p50_ms"], 4)
    target = Path(out) if out is not None else artifact.parent / "bench.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(target)
    return result


# format -> (its own runtime, the runtimes that can run it), from edgec.core.formats.
BENCH_RUNTIMES = {name: (f.bench_runtimes[0], set(f.bench_runtimes)) for name, f in FORMATS.items()
                  if f.bench_runtimes}


def bench_build(folder: Path, *, runtime: str | None = None, runs: int = RUNS, warmup: int = WARMUP,
                threads: int = 1) -> dict:
    """``edgec bench OUT/ID``: bench a build folder's artifact against its float reference.

    The format comes from the folder's ``report.json``; ``runtime`` overrides the format's own (e.g.
    ``litert`` for a TFLite Micro build). Writes ``folder/bench.json``.
    """
    folder = Path(folder)
    try:
        fmt = json.loads((folder / "report.json").read_text())["format"]
    except (OSError, ValueError, KeyError):
        raise InputError(f"{folder} is not an edgec build folder (no report.json with a format)",
                         stage="bench") from None
    if fmt not in BENCH_RUNTIMES:
        raise InputError(f"format '{fmt}' has no host runtime to bench (formats: {', '.join(BENCH_RUNTIMES)})",
                         stage="bench")
    artifact, reference = FORMATS[fmt].artifact, FORMATS[fmt].float_reference
    own, fits = BENCH_RUNTIMES[fmt]
    if runtime is not None and runtime not in fits:
        raise InputError(f"a {fmt} build runs in {', '.join(sorted(fits))}, not '{runtime}'", stage="bench")
    for name in (artifact, reference):
        if not (folder / name).is_file():
            raise InputError(f"{folder / name} is missing; recompile", stage="bench")
    note = None
    if runtime == "litert" and fmt == "tflm":
        why = litert_readable((folder / artifact).read_bytes())
        if why is not None:  # the exporter proved both bit-exact in TFLite Micro; LiteRT runs the unslimmed one
            artifact, note = "intermediate/model_int8.tflite", f"LiteRT cannot read model.tflite ({why}): " \
                "timed intermediate/model_int8.tflite, bit-exact with it in TFLite Micro"
            if not (folder / artifact).is_file():
                raise InputError(f"LiteRT cannot read {folder}/model.tflite ({why}) and {folder / artifact} "
                                 "is missing; recompile", stage="bench")
            log.warning("%s", note)
    return bench(folder / artifact, folder / reference, runtime or own, runs=runs, warmup=warmup,
                 threads=threads, out=folder / "bench.json", note=note)


def litert_p50_ms(model: bytes, inputs: list[np.ndarray] | None = None, *, runs: int = 50,
                  threads: int = 1) -> float:
    """Median LiteRT latency of in-memory ``model`` bytes (ms), on random inputs of its shape."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.tflite"
        path.write_bytes(model)
        return _stats(_time([_load(path, "litert", threads)], runs, min(WARMUP, runs))[0])["p50_ms"]


def table(result: dict) -> str:
    """A rich table of one bench.json: artifact vs reference, and the speedup."""
    import io

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{result['runtime']} ({result['threads']} thread(s))")
    for col in ("model", "p50 ms", "p90 ms", "p99 ms", "runs/s", "peak MiB", "bytes"):
        t.add_column(col, justify="right" if col != "model" else "left")
    for key in ("reference", "artifact"):
        r = result[key]
        mem = r.get("peak_memory_bytes")
        t.add_row(f"{key}: {r['path']}", f"{r['p50_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['p99_ms']:.3f}",
                  f"{r['throughput_per_s']:.0f}", "n/a" if mem is None else f"{mem / 2**20:.1f}",
                  f"{r['bytes']:,}")
    t.caption = f"speedup (reference p50 / artifact p50): {result['speedup']:.2f}x"
    buf = io.StringIO()
    Console(file=buf, width=110, color_system=None).print(t)
    return buf.getvalue()


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--memory":
    print(_memory_probe(sys.argv[2], sys.argv[3], int(sys.argv[4])))
