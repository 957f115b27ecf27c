"""Share of inference time per layer of an ONNX artifact, from ONNX Runtime's own profiler.

The shipped model runs on one held-out sample in a session with ``enable_profiling``; each node's
``*_kernel_time`` events are summed over the runs. ONNX Runtime fuses and renames nodes when it
optimizes the graph (``<node>_token_3`` for a fused QDQ group, ``<tensor>_nchwc`` for the blocked
layout), so a kernel is matched to the table's row by its node or output tensor name with those
suffixes removed; kernels matching no row (quantize/dequantize, layout reorders) are summed as
``unattributed``. Each kernel counts its median over the runs. Timings differ between runs and
hosts: they are shares measured in one build.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from edgec.runtimes.base import fit_layout, order_inputs

RUNS = 20
_SUFFIX = re.compile(r"(_token_\d+|_nchwc)+$")


def kernel_times(artifact: Path, sample: dict[str, np.ndarray], runs: int = RUNS) -> Counter:
    """Median microseconds per run of each (ORT-renamed) node's kernel over ``runs`` inferences of one sample."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "profile")
        options.intra_op_num_threads, options.log_severity_level = 1, 3
        session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        specs = session.get_inputs()
        feed = {s.name: fit_layout(np.asarray(x[:1], np.float32), s.shape, s.name)
                for x, s in zip(order_inputs(sample, [s.name for s in specs]), specs)}
        for _ in range(runs):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
    durations: dict[str, list[int]] = {}
    for event in trace:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            durations.setdefault(name[: -len("_kernel_time")], []).append(int(event.get("dur", 0)))
    # The median run of each kernel: the first run (weight packing) and a busy host's preemptions
    # put single spikes of milliseconds on any kernel, which a sum would report as its cost.
    return Counter({name: float(np.median(d)) for name, d in durations.items()})


def attach(rows: list[dict], times: Counter) -> dict:
    """Set each row's ``time_share`` from ``times``; returns what the section says about them."""
    total = sum(times.values())
    if not total:
        return {"time_share_note": "not measured: ONNX Runtime's profiler recorded no kernel time"}
    index = {}
    for i, row in enumerate(rows):
        for key in (row.get("node"), row.get("tensor")):
            if key:
                index.setdefault(key, i)
                index.setdefault(key.split(":")[0], i)
    shares = [0.0] * len(rows)
    unattributed = 0.0
    for name, us in times.items():
        base = _SUFFIX.sub("", name)
        found = index.get(name, index.get(base, index.get(base.split(":")[0])))
        if found is None:
            unattributed += us
        else:
            shares[found] += us
    for row, us in zip(rows, shares):
        row["time_share"] = round(us / total, 4)
    return {"time_share_tool": f"onnxruntime profiler, median of {RUNS} runs of one held-out sample, 1 thread",
            "time_unattributed_share": round(unattributed / total, 4)}
