"""``report.json``, ``report.html`` and ``manifest.json`` of a target folder."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from edgec.core.version import __version__
from edgec.report.html import render_html, render_index
from edgec.report.layer_table import section

TOOLCHAIN_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
                      "tflite-micro", "numpy", "onnx", "onnxruntime", "tf2onnx", "openvino", "nncf")


def toolchain_versions() -> dict[str, str | None]:
    """Installed versions of the toolchains edgec drives (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TOOLCHAIN_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_path(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    path = Path(path)
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(f.relative_to(path)).encode() + b"\0")
            digest.update(hashlib.sha256(f.read_bytes()).digest())
    else:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, data: dict) -> None:
    """Write JSON with sorted keys and a newline, so the same data gives the same bytes."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_manifest(folder: Path, *, recipe: dict, inputs: dict[str, str | None], host: dict | None = None) -> dict:
    """``manifest.json``: versions, the resolved recipe, SHA-256 of every input and output file.

    ``host``: the build host's int8 arithmetic against the target's (``edgec.verify.host_isa.check``), if it applies.
    """
    outputs = {str(p.relative_to(folder)): sha256_path(p)
               for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    manifest = {
        "edgec_version": __version__,
        "toolchains": toolchain_versions(),
        "recipe": recipe,
        "inputs": {k: (sha256_path(Path(v)) if v and Path(v).exists() else None) for k, v in inputs.items()},
        "outputs": outputs,
    }
    if host is not None:
        manifest["host"] = {k: host[k] for k in ("host_isa", "target_isa", "host_reproduces")}
    write_json(folder / "manifest.json", manifest)
    return manifest


def write_reports(build, source: str) -> None:
    """``report.json`` (with the per-layer table of the shipped file), ``report.html``, ``manifest.json``."""
    fmt = build.target["format"]
    shipped = build.final_tflite or (build.int8_tflite if fmt == "c" else None)
    artifact = build.artifact if fmt in ("onnx", "openvino") else None
    sample = build.evaluation.subset(range(1)).arrays() if fmt == "onnx" and len(build.evaluation) else None
    build.report["layers"] = section(shipped, build.report.get("layer_error"), fmt, artifact, sample)
    budget_mem, memory = build.target.get("memory", {}), build.report["memory"]
    for key in ("flash_reserved_bytes", "ram_reserved_bytes"):  # drawn after the budget in the gauges
        if memory.get(key.replace("reserved", "budget")) is not None:
            memory.setdefault(key, budget_mem.get(key, 0))
    write_json(build.out / "report.json", build.report)
    (build.out / "report.html").write_text(render_html(build.report))
    settings = build.settings
    write_manifest(build.out, recipe={**settings, "target": build.target["id"]},
                   host=build.report.get("int8_arithmetic"),
                   inputs={"model": source, "calibration": _path_or_none(settings.get("calibration")),
                           "eval": _path_or_none(settings.get("eval"))})


def _path_or_none(value):
    return None if value in (None, "random") else value


def write_index(out: Path, reports: dict[str, dict]) -> None:
    """``OUT/index.html`` of a multi-target compile, linking each target's report (and its bench.json),
    and the sweep page when ``edgec sweep`` ran in the same OUT."""
    out.mkdir(parents=True, exist_ok=True)
    benches = {t: json.loads((out / t / "bench.json").read_text()) for t in reports
               if (out / t / "bench.json").is_file()}
    sweep = json.loads((out / "sweep.json").read_text()) if (out / "sweep.html").is_file() else None
    (out / "index.html").write_text(render_index(reports, benches, sweep=sweep))


def refresh_index(out: Path) -> bool:
    """Re-render ``OUT/index.html``, if a compile wrote one, from its targets' current reports and benches."""
    import re

    index = Path(out) / "index.html"
    if not index.is_file():
        return False
    found = re.search(r'data-targets="([^"]*)"', index.read_text())
    targets = [t for t in (found.group(1).split() if found else []) if (index.parent / t / "report.json").is_file()]
    if not targets:
        return False
    write_index(index.parent, {t: json.loads((index.parent / t / "report.json").read_text()) for t in targets})
    return True
