"""Plots for report.html (matplotlib, Agg): size and accuracy per stage, per-layer error, latency.

Output is byte-identical for the same numbers: no dates or versions in the file metadata, a fixed
``svg.hashsalt`` (SVG element ids are otherwise random), fonts drawn as paths, fixed figure sizes.
Each function takes plain numbers, writes one file (``.svg`` or ``.png`` by suffix) and returns its
path; :func:`plots_from_report` draws whichever of them a report.json has the data for.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_STYLE = {"svg.hashsalt": "edgec", "svg.fonttype": "path", "font.size": 9, "figure.dpi": 100,
          "axes.spines.top": False, "axes.spines.right": False}
_FLOAT, _OPT = "#8c8c8c", "#1f77b4"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; same backend, same bytes everywhere
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"svg": {"Date": None, "Creator": "edgec"}, "png": {"Software": None}}.get(path.suffix[1:], {})
    fig.savefig(path, metadata=meta, bbox_inches=None)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _bars(labels: list[str], values: list[float], colors: list[str], *, title: str, ylabel: str, fmt: str,
          path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    bars = ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0, ha="right"
                  if len(labels) > 4 else "center")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    for b, v in zip(bars, values):
        ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    fig.tight_layout()
    return _save(fig, path)


def size_per_stage(stages: list[tuple[str, int]], path: Path) -> Path:
    """Bar chart of model bytes after each stage (first bar: the float model)."""
    labels = [s for s, _ in stages]
    values = [b / 1024 for _, b in stages]
    colors = [_FLOAT] + [_OPT] * (len(values) - 1)
    return _bars(labels, values, colors, title="Model size per stage", ylabel="KiB", fmt="{:.1f}", path=path)


def accuracy_per_stage(stages: list[tuple[str, float]], path: Path) -> Path:
    """Bar chart of top-1 (0..1) after each stage, shown in percent."""
    labels = [s for s, _ in stages]
    values = [100 * a for _, a in stages]
    colors = [_FLOAT] + [_OPT] * (len(values) - 1)
    path = _bars(labels, values, colors, title="Top-1 per stage", ylabel="%", fmt="{:.1f}", path=path)
    return path


def layer_error(layers: list[dict], path: Path, *, metric: str = "noise_to_signal", top: int = 15) -> Path:
    """Horizontal bars of the per-layer int8 error, worst at the top (from ``layer_error.analyze``)."""
    plt = _pyplot()
    rows = [x for x in layers if x.get(metric) is not None][:top]
    fig, ax = plt.subplots(figsize=(6.0, 0.3 * max(len(rows), 3) + 1.0))
    names = [x["layer"] for x in rows][::-1]
    values = [float(x[metric]) for x in rows][::-1]
    ax.barh(range(len(values)), values, color=[_OPT] * (len(values) - 1) + ["#d62728"] if values else [])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(metric.replace("_", " ") + " (int8 vs float, per layer)")
    ax.set_title("Per-layer quantization error (worst on top)")
    fig.tight_layout()
    return _save(fig, path)


def latency(rows: list[tuple[str, float, float]], path: Path) -> Path:
    """Grouped bars of p50 latency (ms), float reference vs optimized artifact, per runtime/model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    x = range(len(rows))
    w = 0.38
    ax.bar([i - w / 2 for i in x], [r[1] for r in rows], w, label="float", color=_FLOAT)
    ax.bar([i + w / 2 for i in x], [r[2] for r in rows], w, label="optimized", color=_OPT)
    for i, (_, f, o) in enumerate(rows):
        ax.annotate(f"{f / o:.2f}x" if o else "", (i + w / 2, o), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(list(x), [r[0] for r in rows])
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("Latency, float vs optimized (same runtime, same run)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def _stage_series(report: dict, key: str) -> list[tuple[str, float]]:
    return [(s["name"], s[key]) for s in report.get("stages", []) if isinstance(s.get(key), (int, float))]


def plots_from_report(report: dict, folder: Path, *, bench: dict | None = None, suffix: str = ".svg"
                      ) -> dict[str, Path]:
    """Draw every plot the report has data for into ``folder``; returns name -> path.

    Uses ``stages[*].bytes`` / ``stages[*].top1`` when stages record them, else the float/artifact
    pair from ``size`` and ``verification``; ``layer_error.layers``; and ``bench`` (a bench.json).
    """
    folder = Path(folder)
    out: dict[str, Path] = {}
    sizes = _stage_series(report, "bytes")
    size = report.get("size", {})
    if len(sizes) < 2 and size.get("float_tflite_bytes") and size.get("artifact_bytes"):
        sizes = [("float", size["float_tflite_bytes"]), (report.get("format", "artifact"), size["artifact_bytes"])]
    if sizes:
        out["size"] = size_per_stage(sizes, folder / f"size_per_stage{suffix}")
    accs = _stage_series(report, "top1")
    ver = report.get("verification", {})
    if len(accs) < 2 and ver.get("reference_top1") is not None and ver.get("artifact_top1") is not None:
        accs = [("float", ver["reference_top1"]), (report.get("format", "artifact"), ver["artifact_top1"])]
    if accs:
        out["accuracy"] = accuracy_per_stage(accs, folder / f"accuracy_per_stage{suffix}")
    layers = (report.get("layer_error") or {}).get("layers")
    if layers:
        out["layer_error"] = layer_error(layers, folder / f"layer_error{suffix}")
    if bench and bench.get("artifact") and bench.get("reference"):
        out["latency"] = latency([(bench["runtime"], bench["reference"]["p50_ms"], bench["artifact"]["p50_ms"])],
                                 folder / f"latency{suffix}")
    return out
