"""Pieces of report.html: human labels and units for report.json keys, tables, style, sorting.

Known keys get a label and a unit (:data:`LABELS`); any other key is still shown, its underscores
turned into spaces, so that sections other stages add to report.json appear without changes here.
"""

from __future__ import annotations

import math
import re
from html import escape

from edgec.report.svg import human_bytes

LABELS = {
    "float_tflite_bytes": "float model (.tflite)", "artifact_bytes": "artifact", "flash_bytes": "flash",
    "gzip_bytes": "gzipped", "arena_bytes": "arena reserved", "arena_measured_host_bytes": "arena measured (host)",
    "arena_head_bytes": "arena: activations", "arena_tail_bytes": "arena: interpreter bookkeeping",
    "flash_budget_bytes": "flash budget", "ram_budget_bytes": "RAM budget", "reference_top1": "float top-1",
    "artifact_top1": "artifact top-1", "top1_agreement": "top-1 agreement with float", "max_abs_err":
    "max absolute error", "cosine": "cosine similarity (mean)", "cosine_min": "cosine similarity (worst sample)",
    "nonfinite_outputs": "NaN/inf outputs", "samples": "held-out samples", "runtime": "runtime",
    "cross_check": "same model in other runtimes", "bit_exact": "bit-exact", "max_abs_diff": "max difference",
    "params": "parameters", "params_after_optimize": "parameters after compression", "macs": "MACs per inference",
    "macs_note": "MACs counted", "optimized_float": "compressed float model", "top1": "top-1",
    "noise_to_signal": "noise / signal (RMSE / RMS)", "added_noise_to_signal": "added noise / signal",
    "accuracy_note": "accuracy", "source": "file", "snr_db": "SNR", "sqnr_db": "SQNR",
}
_PERCENT = re.compile(r"(top1|agreement|sparsity|share)$")


def label(key: str) -> str:
    """Human label of a report.json key."""
    return LABELS.get(key, key.replace("_", " "))


def format_value(key: str, value) -> str:
    """A value with the unit its key implies (bytes, %, dB), else plain."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
        if key.endswith("_bytes") or key == "bytes":
            return human_bytes(value)
        if _PERCENT.search(key) and 0 <= value <= 1:
            return f"{100 * value:.1f}%"
        if "cosine" in key:  # 0.99998 and 1.0 are different verdicts: show the digits
            return f"{value:.6f}"
        if key.endswith("_db"):
            return f"{value:.1f} dB"
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _cell(key: str, value) -> str:
    if isinstance(value, dict):
        return generic_table(value)
    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        return _list_table(value)
    if isinstance(value, list):
        return escape(", ".join(format_value(key, x) for x in value))
    return escape(format_value(key, value))


def _list_table(items: list[dict]) -> str:
    keys: list[str] = []
    for item in items:
        keys += [k for k in item if k not in keys]
    head = "".join(f"<th>{escape(label(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_cell(k, item.get(k))}</td>" for k in keys) + "</tr>" for item in items)
    return f'<table class="kv"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def generic_table(data: dict) -> str:
    """Any dict as a two-column table (nested dicts and lists of dicts as nested tables)."""
    rows = "".join(f'<tr data-key="{escape(k)}"><th>{escape(label(k))}</th><td>{_cell(k, v)}</td></tr>'
                   for k, v in data.items() if v not in (None, [], {}))
    return f'<table class="kv">{rows}</table>'


LAYER_COLUMNS = (("index", "#"), ("name", "layer"), ("op", "operator"), ("output_shape", "output shape"),
                 ("macs", "MACs"), ("mac_share", "MAC share"), ("weight_bytes", "weights as shipped"),
                 ("sparsity", "sparsity"), ("unique_values_max_per_channel", "unique values / channel"),
                 ("int8_snr_db", "int8 SNR"), ("time_share", "time share"))


def _worst(rows: list[dict], key: str, lowest: bool = False) -> set[int]:
    """Rows with the largest (or lowest) non-null, non-zero ``key``: the worst third, 1 to 3 of them."""
    found = [(r[key], i) for i, r in enumerate(rows) if r.get(key) not in (None, 0)]
    found.sort(key=lambda t: t[0], reverse=not lowest)
    return {i for _, i in found[:max(1, min(3, len(found) // 3))]} if len(found) > 1 else set()


def layer_table(rows: list[dict]) -> str:
    """The sortable per-layer table; columns with no value in any row are left out."""
    total_macs = sum(r.get("macs") or 0 for r in rows)
    rows = [{**r, "mac_share": (r["macs"] / total_macs) if total_macs and r.get("macs") is not None else None}
            for r in rows]
    columns = [(k, h) for k, h in LAYER_COLUMNS if any(r.get(k) is not None for r in rows)]
    hot = {k: _worst(rows, k) for k in ("macs", "weight_bytes", "time_share")}
    hot["int8_snr_db"] = _worst(rows, "int8_snr_db", lowest=True)
    head = "".join(f'<th data-col="{k}" title="sort by {escape(h)}">{escape(h)}</th>' for k, h in columns)
    body = []
    for i, r in enumerate(rows):
        cells = []
        for k, _ in columns:
            v = r.get(k)
            shown = "×".join(str(d) for d in v) if k == "output_shape" and v else (
                format_value("weight_bytes", v) if k == "weight_bytes" else format_value(k, v))
            sort = v if isinstance(v, (int, float)) and not isinstance(v, bool) else (
                "" if v is None else str(shown))
            cls = ' class="hot"' if i in hot.get(k, ()) else ""
            cells.append(f'<td data-col="{k}" data-v="{escape(str(sort))}"{cls}>{escape(shown)}</td>')
        worst = ' class="worst"' if i in hot["int8_snr_db"] else ""
        body.append(f"<tr{worst}>{''.join(cells)}</tr>")
    return (f'<table id="layer-table" class="layers"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def next_step(report: dict) -> str:
    """The one thing to try first, from the failures that report.json lists."""
    failures = list(report.get("failures") or [])
    for f in failures:
        if "budget" in f or " over the " in f:
            m = re.search(r"\bTry (.+)$", f)
            return "Shrink the model or pick a bigger target: " + (m.group(1) if m else "--prune, --clusters")
    for f in failures:
        m = re.search(r"\b[Tt]ry (--.+)$", f)
        if m:
            return "Int8 hurts a few layers: try " + m.group(1)
    return failures[0] if failures else "verification failed; see the verification section"


def waterfall_steps(report: dict) -> list[tuple[str, int | None, str]]:
    """(stage, bytes, accuracy caption) from the float model to the shipped file, measured steps only."""
    size, comp, ver = (report.get(k) or {} for k in ("size", "compression", "verification"))
    metric = "artifact_top1" if ver.get("artifact_top1") is not None else None

    def acc(value) -> str:
        return f"top-1 {format_value('top1', value)}" if value is not None else ""

    steps = [("float", size.get("float_tflite_bytes"), acc(ver.get("reference_top1")))]
    optimized = (ver.get("optimized_float") or {}).get("top1")
    if "optimized_float" in ver:
        names = "+".join(s["name"] for s in report.get("stages") or [] if s.get("name") not in
                         ("load", "fuse", "quantize", "export", "verify")) or "compressed"
        steps.append((names, None, acc(optimized)))
    lut, slim = comp.get("lut") or {}, comp.get("slim") or {}
    first = lut.get("bytes_before") or slim.get("bytes_before")
    if first:
        steps.append(("int8", first, ""))
    if lut.get("bytes_after") and lut.get("bytes_after") != lut.get("bytes_before"):
        steps.append(("LUT", lut["bytes_after"], ""))
    if slim.get("applied"):
        steps.append(("slim", slim.get("bytes_after"), ""))
    shipped = acc(ver.get(metric)) if metric else (
        f"agreement {format_value('top1_agreement', ver.get('top1_agreement'))}")
    steps.append(("shipped", size.get("artifact_bytes"), shipped))
    return steps


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:62em;margin:1.5em auto;
padding:0 1em;color:#1a202c}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #e2e8f0}
.sub,.s{color:#4a5568;font-size:.9em}.na{color:#718096;font-style:italic}
.verdict{font-size:.6em;padding:.15em .5em;border-radius:.3em;color:#fff;vertical-align:middle}
.ok{background:#2f855a}.bad{background:#c53030}
.next{border-left:4px solid #c53030;background:#fff5f5;padding:.5em 1em;margin:.8em 0}
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #e2e8f0;border-radius:.4em;padding:.5em .8em;
min-width:9em}.card .k{color:#4a5568;font-size:.85em}.card .v{font-size:1.35em;font-weight:600}
table{border-collapse:collapse;margin:.4em 0;font-size:.92em}td,th{border:1px solid #e2e8f0;padding:.2em .5em;
text-align:left;vertical-align:top}th{background:#f7fafc;font-weight:600}
table.layers td[data-col]:not([data-col=name]):not([data-col=op]){text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
table.layers th{cursor:pointer}td.hot{background:#feebc8;font-weight:600}
tr.worst td[data-col=int8_snr_db]{background:#fed7d7}
svg{display:block;margin:.3em 0;max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#1a202c}
svg text.b{font-weight:600}svg text.bad{fill:#c53030}svg text.cm{font-size:9px}
.mini{height:5px;background:#e2e8f0;margin-top:3px}.mini i{display:block;height:5px}
figure{display:inline-block;margin:.5em 1.5em .5em 0;vertical-align:top}figcaption{font-size:.9em;color:#4a5568}
@media print{body{max-width:none;margin:0}h2{break-after:avoid}section,figure,tr{break-inside:avoid}
table.layers th{cursor:auto}}
"""

SORT_JS = """
document.querySelectorAll('table.layers').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var rows=Array.from(t.tBodies[0].rows),up=th.dataset.dir==='down';th.dataset.dir=up?'up':'down';
  rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v,
   nx=parseFloat(x),ny=parseFloat(y),c=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return up?c:-c;});
  rows.forEach(function(r){t.tBodies[0].appendChild(r);});});});});
"""
