"""``report.json``, ``report.html`` and ``manifest.json`` of a target folder."""

from __future__ import annotations

import hashlib
import html
import json
import platform
from importlib import metadata
from pathlib import Path

from . import __version__

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

    ``host``: the build host's int8 arithmetic against the target's (``edgec.host_isa.check``), if it applies.
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


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "—"
    return str(value)


def _table(rows: dict) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                    for k, v in rows.items() if not isinstance(v, (dict, list)))
    return f"<table>{cells}</table>"


def render_html(report: dict, extra_sections: list[str] | None = None) -> str:
    """A readable, self-contained HTML page for one target's report."""
    ver = report.get("verification", {})
    status = "passed" if ver.get("passed") else "FAILED"
    stages = "".join(f"<tr><td>{html.escape(s['name'])}</td><td>{s.get('seconds', 0):.2f} s</td></tr>"
                     for s in report.get("stages", []))
    layers = "".join(
        f"<tr><td>{html.escape(str(layer.get('name')))}</td><td>{_fmt(layer.get('sparsity'))}</td>"
        f"<td>{_fmt(layer.get('unique_values_max_per_channel'))}</td></tr>"
        for layer in report.get("compression", {}).get("layers", []))
    failures = "".join(f"<li>{html.escape(f)}</li>" for f in ver.get("failures", []) + report.get("failures", []))
    parts = [
        f"<h1>edgec report: {html.escape(report['target'])}</h1>",
        f"<p>Format <b>{html.escape(report['format'])}</b>, model <code>{html.escape(report['model']['source'])}"
        f"</code>, edgec {html.escape(report['edgec_version'])}. Verification <b>{status}</b>.</p>",
        f"<ul class=fail>{failures}</ul>" if failures else "",
        "<h2>Size</h2>", _table(report.get("size", {})),
        "<h2>Memory</h2>", _table(report.get("memory", {})),
        "<h2>Verification</h2>", _table(ver),
        "<h2>Model</h2>", _table(report.get("model", {})),
        "<h2>Stages</h2>", f"<table>{stages}</table>",
    ]
    if layers:
        parts += ["<h2>Compression (measured in the artifact)</h2>",
                  f"<table><tr><th>layer</th><th>sparsity</th><th>unique values / channel</th></tr>{layers}</table>"]
    parts += extra_sections or []
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
             "text-align:left}th{background:#f4f4f4}.fail{color:#b00}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>edgec {html.escape(report['target'])}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
