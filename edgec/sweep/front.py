"""The trade-off of a sweep: Pareto front, the best trial within constraints, and its HTML page.

Pure functions over trial records (``{"id", "recipe", "flags", "metrics", "status"}``), no Ray, no
TensorFlow. Objectives: flash and RAM (smaller is better), accuracy (larger), and latency (smaller)
when every measured trial has one (instructions on an emulated board or host milliseconds are not
comparable with a missing value, so a latency axis exists only when all trials measured it).
"""

from __future__ import annotations

import html

MINIMIZE = ("flash_bytes", "ram_bytes")


def objectives(trials: list[dict]) -> list[tuple[str, int]]:
    """(metric, sign) pairs, sign +1 to minimize and -1 to maximize, for the measured ``trials``."""
    measured = [t for t in trials if t.get("metrics")]
    objs = [(m, 1) for m in MINIMIZE if measured and all(t["metrics"].get(m) is not None for t in measured)]
    objs.append(("accuracy", -1))
    if measured and all(t["metrics"].get("latency") is not None for t in measured):
        objs.append(("latency", 1))
    return objs


def accuracy_axis(trials: list[dict]) -> tuple[str, float]:
    """(label, scale) of the accuracy objective: top-1 in percent, or the SNR in dB of a non-classifier."""
    metric = next((t["metrics"].get("accuracy_metric") for t in trials if t.get("metrics")), None)
    return ("SNR vs float (dB)", 1.0) if metric == "snr_db" else ("accuracy (%)", 100.0)


def format_accuracy(metrics: dict) -> str:
    """A trial's accuracy as shown: ``97.2%``, or ``31.4 dB`` for a non-classifier's SNR; ``—`` unmeasured."""
    if metrics.get("accuracy") is None:
        return "—"
    if metrics.get("accuracy_metric") == "snr_db":
        return f"{metrics['accuracy']:.1f} dB"
    return f"{100 * metrics['accuracy']:.1f}%"


def _dominates(a: dict, b: dict, objs) -> bool:
    worse_nowhere = all(sign * a[m] <= sign * b[m] for m, sign in objs)
    return worse_nowhere and any(sign * a[m] < sign * b[m] for m, sign in objs)


def pareto(trials: list[dict]) -> list[str]:
    """Ids of the measured trials no other measured trial dominates (ties on every objective all stay)."""
    measured = [t for t in trials if t.get("metrics") and t["metrics"].get("accuracy") is not None]
    objs = objectives(measured)
    return [t["id"] for t in measured
            if not any(_dominates(o["metrics"], t["metrics"], objs) for o in measured if o is not t)]


def best(trials: list[dict], *, max_flash: int | None = None, max_ram: int | None = None,
         max_accuracy_drop: float | None = None) -> tuple[dict | None, str]:
    """The most accurate passing trial within the constraints (then the smallest flash); or why none is."""
    ok = [t for t in trials if t["status"] == "ok" and t.get("metrics")]
    if max_accuracy_drop is not None and any(t["metrics"].get("accuracy_metric") == "snr_db" for t in ok):
        return None, ("--max-accuracy-drop applies to classifiers; this model is verified by its SNR against "
                      "the float model (the target's min_snr_db gates it)")
    kept = []
    for t in ok:
        m = t["metrics"]
        if max_flash is not None and m["flash_bytes"] > max_flash:
            continue
        if max_ram is not None and (m.get("ram_bytes") or 0) > max_ram:
            continue
        if max_accuracy_drop is not None and m.get("accuracy_drop") is not None and \
                m["accuracy_drop"] > max_accuracy_drop:
            continue
        kept.append(t)
    if not kept:
        return None, (f"none of the {len(ok)} passing trials meets the constraints" if ok
                      else "no trial passed verification")
    kept.sort(key=lambda t: (-t["metrics"]["accuracy"], t["metrics"]["flash_bytes"], t["id"]))
    return kept[0], ""


def _scatter(trials: list[dict], front: set[str], x_key: str, x_label: str, chosen: str | None) -> str:
    """An inline SVG scatter of accuracy against ``x_key``; the front joined and highlighted."""
    pts = [t for t in trials if t.get("metrics") and t["metrics"].get(x_key) is not None
           and t["metrics"].get("accuracy") is not None]
    if not pts:
        return f"<p>No trial measured {html.escape(x_label)}.</p>"
    w, h, pad = 560, 340, 56
    y_label, scale = accuracy_axis(pts)
    xs = [t["metrics"][x_key] for t in pts]
    ys = [scale * t["metrics"]["accuracy"] for t in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def sx(v):
        return pad + (v - x0) / (x1 - x0) * (w - 2 * pad)

    def sy(v):
        return h - pad - (v - y0) / (y1 - y0) * (h - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             f'aria-label="{y_label} vs {html.escape(x_label)}">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#444"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#444"/>',
             f'<text x="{w / 2}" y="{h - 14}" text-anchor="middle" font-size="13">{html.escape(x_label)}</text>',
             f'<text x="16" y="{h / 2}" transform="rotate(-90 16 {h / 2})" text-anchor="middle" '
             f'font-size="13">{y_label}</text>']
    for v, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text x="{sx(v):.1f}" y="{h - pad + 16}" text-anchor="{anchor}" font-size="11">{v:,.0f}</text>')
    for v in (y0, y1):
        parts.append(f'<text x="{pad - 6}" y="{sy(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.1f}</text>')
    on_front = sorted((t for t in pts if t["id"] in front), key=lambda t: t["metrics"][x_key])
    if len(on_front) > 1:
        path = " ".join(f"{sx(t['metrics'][x_key]):.1f},{sy(scale * t['metrics']['accuracy']):.1f}" for t in on_front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#d9480f" stroke-width="1.5"/>')
    for t in pts:
        cx, cy = sx(t["metrics"][x_key]), sy(scale * t["metrics"]["accuracy"])
        color = "#d9480f" if t["id"] in front else "#868e96"
        ring = ' stroke="#000" stroke-width="2"' if t["id"] == chosen else ""
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{color}"{ring}>'
                     f'<title>{t["id"]}: {html.escape(_settings(t))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _settings(trial: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in {**trial.get("recipe", {}), **trial.get("flags", {})}.items())


def figures(sweep: dict) -> dict[str, str]:
    """The trade-off plots as standalone SVG: ``flash`` (always) and ``latency`` (when measured)."""
    trials, front = sweep["trials"], set(sweep["pareto"])
    chosen = (sweep.get("best") or {}).get("id")
    unit = next((t["metrics"].get("latency_unit") for t in trials if t.get("metrics")
                 and t["metrics"].get("latency") is not None), None)
    out = {"flash": _scatter(trials, front, "flash_bytes", "flash (bytes)", chosen)}
    if unit:
        out["latency"] = _scatter(trials, front, "latency", f"latency ({unit})", chosen)
    return out


def page(sweep: dict) -> str:
    """The sweep's self-contained HTML page: the two trade-off plots and every trial."""
    trials, front = sweep["trials"], set(sweep["pareto"])
    chosen = (sweep.get("best") or {}).get("id")
    rows = []
    for t in trials:
        m = t.get("metrics") or {}
        acc = format_accuracy(m)
        lat = f"{m['latency']:,.3g} {m.get('latency_unit', '')}" if m.get("latency") is not None else "—"
        rows.append(f"<tr{' class=front' if t['id'] in front else ''}><td>{t['id']}</td>"
                    f"<td>{html.escape(_settings(t))}</td><td>{t['status']}</td>"
                    f"<td>{m.get('flash_bytes', '—'):,}</td><td>{m.get('ram_bytes') or '—'}</td>"
                    f"<td>{acc}</td><td>{lat}</td><td>{html.escape(t.get('reason', ''))}</td></tr>"
                    if m.get("flash_bytes") is not None else
                    f"<tr><td>{t['id']}</td><td>{html.escape(_settings(t))}</td><td>{t['status']}</td>"
                    f"<td colspan=4>—</td><td>{html.escape(t.get('reason', ''))}</td></tr>")
    plots = list(figures(sweep).values())
    best_line = (f"<p>Best within the constraints: <b>{chosen}</b> ({html.escape(_settings(sweep['best']))}), "
                 f"written to <code>edgec.toml</code>.</p>" if chosen else
                 f"<p>No trial meets the constraints: {html.escape(sweep.get('best_reason', ''))}.</p>")
    return ("<!doctype html><html><head><meta charset=utf-8><title>edgec sweep</title><style>"
            "body{font:14px system-ui,sans-serif;margin:24px;color:#212529}table{border-collapse:collapse}"
            "td,th{border:1px solid #dee2e6;padding:3px 8px;text-align:left}tr.front td{background:#fff4e6}"
            ".plots{display:flex;flex-wrap:wrap;gap:16px}</style></head><body>"
            f"<h1>edgec sweep: {html.escape(str(sweep['model']))} for {html.escape(sweep['target'])}</h1>"
            f"<p>{len(trials)} trials on {html.escape(sweep['engine']['name'])} "
            f"{html.escape(str(sweep['engine'].get('version')))}; the Pareto front (orange) over "
            f"{html.escape(', '.join(m for m, _ in objectives(trials)))}.</p>{best_line}"
            f"<div class=plots>{''.join(plots)}</div><h2>Trials</h2><table><tr><th>id</th><th>settings</th>"
            "<th>status</th><th>flash B</th><th>RAM B</th><th>accuracy</th><th>latency</th><th>note</th></tr>"
            f"{''.join(rows)}</table></body></html>\n")
