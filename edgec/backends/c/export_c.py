"""The ``c`` target format: exporter and host runtime of edgec's generated C.

``export(build)`` writes ``model.c``/``model.h`` and the kernel sources at the top of the target
folder and fills the report; ``predict(artifact, inputs)`` runs that folder compiled for the host,
so verification checks the exact C that ships (the firmware runs the same sources on the device).
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgec.backends.c.codegen import generate
from edgec.backends.c.hostcheck import compile_host, run_host
from edgec.core.errors import InputError, ToolchainError
from edgec.core.targets import check_budget, model_budget
from edgec.runtimes.base import dequantize_output, quantize_input
from edgec.runtimes.tflm_arena import measure_arena

STAGE = "export"

# The int8 .tflite that the C was generated from, kept in the build folder: TFLite Micro's bit-exact
# reference for the generated C (device verification, verification's cross-check runtimes).
REFERENCE_MODEL = "intermediate/model.tflite"


def reference_model(artifact: Path) -> Path:
    """The int8 ``.tflite`` a ``c`` build was generated from, for its ``model.h`` or build folder."""
    folder = Path(artifact)
    return (folder if folder.is_dir() else folder.parent) / REFERENCE_MODEL


def export(build) -> None:
    """Generate the C for ``build.int8_tflite`` into ``build.out``; report arena, weights and MACs."""
    target = build.target.get("id")
    if build.int8_tflite is None:
        raise ToolchainError("no int8 model to generate C from", stage=STAGE, target=target)
    flash_budget, ram_budget = model_budget(build.target)
    try:
        info = generate(build.int8_tflite, build.out, flash_bytes=flash_budget,
                        core=build.target.get("cpu", {}).get("core"))
    except InputError as e:
        raise InputError(str(e).removeprefix(f"[{e.stage}] "), stage=STAGE, target=target) from None
    reference = build.out / REFERENCE_MODEL  # build.work is build.out / "intermediate"
    reference.parent.mkdir(parents=True, exist_ok=True)
    reference.write_bytes(build.int8_tflite)
    build.artifact = build.out / "model.h"
    tflm_arena = measure_arena(build.int8_tflite)["arena_bytes"]
    build.report["memory"] = {
        "arena_bytes": info["arena_bytes"],
        "tflm_arena_bytes": tflm_arena,
        "arena_vs_tflm": round(info["arena_bytes"] / tflm_arena, 3) if tflm_arena else None,
        "arena_note": "static plan; the input and output tensors live in the caller's buffers",
        "flash_budget_bytes": flash_budget,
        "ram_budget_bytes": ram_budget,
    }
    size = build.report.setdefault("size", {})
    size["artifact_bytes"] = sum((build.out / f).stat().st_size for f in info["files"])
    size["flash_bytes"] = info["weight_bytes"]
    sources = b"".join((build.out / f).read_bytes() for f in sorted(info["files"]))
    size["gzip_bytes"] = len(gzip.compress(sources, compresslevel=9, mtime=0))
    size["flash_note"] = "constant data only; the linked code size is measured by the firmware build"
    build.report["operators"] = sorted(set(info["ops"]))
    build.report["c_backend"] = {"macs": info["macs"], "weight_bytes": info["weight_bytes"],
                                 "input_type": info["input_type"], "output_type": info["output_type"],
                                 "ops": info["ops"], "files": info["files"]}
    check_budget(flash_bytes=info["weight_bytes"], ram_bytes=info["arena_bytes"], profile=build.target)


def _header_value(header: str, name: str) -> str:
    match = re.search(rf"#define EDGEC_{name} (.+)", header)
    if not match:
        raise InputError(f"model.h does not define EDGEC_{name}: not edgec's generated C", stage="verify")
    return match.group(1).strip()


def _qparams(header: str, kind: str) -> tuple[float | None, int | None, tuple[int, ...]]:
    """Scale, zero point and shape of the input or output; no scale for a float32 tensor."""
    shape = tuple(int(d) for d in _header_value(header, f"{kind}_SHAPE").strip("{}").split(","))
    if re.search(rf"#define EDGEC_{kind}_FLOAT 1\b", header):
        return None, None, shape
    scale = float(_header_value(header, f"{kind}_SCALE").rstrip("f"))
    zero = int(_header_value(header, f"{kind}_ZERO_POINT").strip("()"))
    return scale, zero, shape


def _detail(scale: float | None, zero: int | None) -> dict:
    if scale is None:
        return {"dtype": np.float32}
    return {"dtype": np.int8, "quantization_parameters": {"scales": [scale], "zero_points": [zero]}}


def predict(artifact: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run float ``inputs`` (batch first) through the generated C compiled for this host.

    ``artifact`` is the folder of the ``c`` format or a file in it. An int8 input is quantized
    with the model's input scale and zero point and an int8 output dequantized, like the other
    runtimes; a float32 input or output (a model converted with float I/O) passes as it is.
    """
    folder = Path(artifact)
    folder = folder if folder.is_dir() else folder.parent
    header = (folder / "model.h").read_text()
    in_scale, in_zero, in_shape = _qparams(header, "INPUT")
    out_scale, out_zero, out_shape = _qparams(header, "OUTPUT")
    (x,) = list(inputs.values())[:1]
    q = quantize_input(np.asarray(x, np.float32), _detail(in_scale, in_zero)).reshape(len(x), *in_shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "c"
        shutil.copytree(folder, work, ignore=shutil.ignore_patterns("host", "intermediate"))
        y = run_host(compile_host(work), q)
    return [dequantize_output(y, _detail(out_scale, out_zero)).reshape(len(x), *out_shape[1:])]
