"""report.html and OUT/index.html, built from report.json alone (a pure function: dict -> HTML).

What a reader needs first comes first: the verdict and the one thing to do next; flash and RAM
against the target's budget; then where the bytes, the MACs and the int8 error go, layer by layer;
then how the artifact's answers differ from the float model's. One file, inline SVG and CSS, no
network, a few lines of JavaScript to sort the layer table; it prints on paper as it shows.
Keys this module does not know (new verification metrics, say) are still shown, under their own
name, by the generic tables at the end of each section.
"""

from __future__ import annotations

from html import escape

from edgec.report import svg
from edgec.report.sections import CSS, SORT_JS, format_value, generic_table, label, layer_table, next_step, waterfall_steps

COMPRESSION_STAGES = {"prune", "cluster", "low-rank", "finetune", "qat"}


def _verdict(report: dict) -> tuple[bool, str]:
    failures = list(report.get("failures") or [])
    ok = not failures and bool((report.get("verification") or {}).get("passed", True))
    return ok, "PASSED" if ok else "FAILED"


def _header(report: dict) -> str:
    ok, word = _verdict(report)
    model = report.get("model") or {}
    parts = [f'<header><h1>{escape(str(report.get("target")))} <span class="verdict {"ok" if ok else "bad"}" '
             f'id="verdict">{word}</span></h1>',
             f'<p class="sub">{escape(str(model.get("source", "")))} &rarr; {escape(str(report.get("format")))}'
             f' &middot; edgec {escape(str(report.get("edgec_version", "")))}</p>']
    ver = report.get("verification") or {}
    said = "passed" if ver.get("passed") else "failed"
    mem = report.get("memory") or {}
    budget = ("over budget" if any("budget" in f for f in report.get("failures") or []) else "within budget"
              if mem.get("flash_budget_bytes") or mem.get("ram_budget_bytes") else "no budget in the target profile")
    parts.append(f'<p id="summary-line">Verification {said} in {escape(str(ver.get("runtime", "?")))} on '
                 f'{ver.get("samples", "?")} held-out samples; {budget}.</p>')
    if not ok:
        failures = "".join(f"<li>{escape(f)}</li>" for f in report.get("failures") or [])
        parts.append(f'<div class="next" id="next-step"><b>Next step:</b> {escape(next_step(report))}'
                     f'<ul>{failures}</ul></div>')
    parts.append("</header>")
    return "".join(parts)


def _cards(report: dict) -> str:
    size, mem, ver, model = (report.get(k) or {} for k in ("size", "memory", "verification", "model"))
    cards = [("Flash", svg.human_bytes(size.get("flash_bytes")),
              f"float model {svg.human_bytes(size.get('float_tflite_bytes'))}"),
             ("RAM (arena)", svg.human_bytes(mem.get("arena_bytes")),
              "measured + margin" if mem.get("arena_measured_host_bytes") else "not measured for this format"),
             ("MACs / inference", format_value("macs", model.get("macs")),
              f"{format_value('params', model.get('params'))} parameters")]
    if ver.get("artifact_top1") is not None:
        cards.append(("Top-1", format_value("artifact_top1", ver["artifact_top1"]),
                      f"float {format_value('reference_top1', ver.get('reference_top1'))}"))
    if ver.get("top1_agreement") is not None:
        cards.append(("Agrees with float", format_value("top1_agreement", ver["top1_agreement"]),
                      f"on {ver.get('samples', '?')} held-out samples"))
    body = "".join(f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div>'
                   f'<div class="s">{escape(s)}</div></div>' for k, v, s in cards)
    return f'<section id="summary" class="cards">{body}</section>'


def _budgets(report: dict) -> str:
    mem, size = report.get("memory") or {}, report.get("size") or {}
    rows = [("Flash", size.get("flash_bytes"), mem.get("flash_budget_bytes"), mem.get("flash_reserved_bytes")),
            ("RAM", mem.get("arena_bytes"), mem.get("ram_budget_bytes"), mem.get("ram_reserved_bytes"))]
    out = []
    for name, used, budget, reserved in rows:
        if used is None:
            why = str(mem.get("arena_note") if name == "RAM" else "no artifact size")
            why = why if why.startswith("not measured") else f"not measured ({why})"
            out.append(f'<p class="na">{name}: {escape(why)}</p>')
        elif budget is None:
            out.append(f'<p class="na">{name}: {svg.human_bytes(used)}; the target profile sets no budget</p>')
        else:
            out.append(svg.gauge(name, int(used), int(budget), reserved))
    if mem.get("arena_measured_host_bytes") is not None:
        out.append(f'<p class="s">{escape(str(mem.get("arena_note", "")))}</p>')
    return f'<section id="budgets"><h2>Flash and RAM against the budget</h2>{"".join(out)}</section>'


def _layers(report: dict) -> str:
    section = report.get("layers") or {}
    rows = section.get("rows") or []
    if not rows:
        note = section.get("note") or "no per-layer data in report.json"
        return f'<section id="layers"><h2>Per layer</h2><p class="na">{escape(note)}</p></section>'
    notes = [section[k] for k in ("int8_snr_note", "time_share_note") if section.get(k)]
    if section.get("time_share_tool"):
        notes.append(f"time share: {section['time_share_tool']}; "
                     f"{format_value('share', section.get('time_unattributed_share'))} of the time in kernels "
                     "outside these rows (quantize/dequantize, layout changes)")
    foot = "".join(f'<p class="s">{escape(n)}</p>' for n in notes)
    return (f'<section id="layers"><h2>Per layer <span class="s">(click a column to sort; the heaviest and '
            f'the noisiest layers are highlighted)</span></h2>{layer_table(rows)}{foot}</section>')


def _bytes(report: dict) -> str:
    parts = (report.get("compression") or {}).get("bytes") or {}
    names = [("weights_bytes", "weights"), ("biases_bytes", "biases"), ("quantization_bytes", "quantization"),
             ("lut_tables_bytes", "LUT tables"), ("rest_bytes", "graph and rest")]
    values = [(n, int(parts[k])) for k, n in names if parts.get(k)]
    if not values:
        return ""
    return (f'<section id="bytes"><h2>Where the flash goes ({svg.human_bytes(parts.get("total_bytes"))})</h2>'
            f'{svg.stacked(values, "bytes")}</section>')


def _compression(report: dict) -> str:
    compressed = {s.get("name") for s in report.get("stages") or []} & COMPRESSION_STAGES
    if not compressed and not (report.get("compression") or {}).get("lut"):
        return ""  # float -> int8 only: the summary cards already say it
    steps = waterfall_steps(report)
    return f'<section id="waterfall"><h2>Size and accuracy per stage</h2>{svg.waterfall(steps)}</section>'


def _outputs(report: dict) -> str:
    ver = report.get("verification") or {}
    out = []
    for item in ver.get("outputs_detail") or []:
        name = escape(str(item.get("output")))
        if item.get("kind") == "classes":
            out.append(f"<figure><figcaption>{name}: top-1 of the artifact against the float model</figcaption>"
                       f"{svg.confusion(item['confusion'])}</figure>")
        elif item.get("error_histogram"):
            h = item["error_histogram"]
            out.append(f"<figure><figcaption>{name}: absolute error, artifact vs float</figcaption>"
                       f"{svg.histogram(h['edges'], h['counts'], '|artifact − float|')}</figure>")
    skip = {"outputs_detail", "failures", "passed"}
    table = generic_table({k: v for k, v in ver.items() if k not in skip})
    return (f'<section id="verification"><h2>Verification in {escape(str(ver.get("runtime", "?")))}</h2>'
            f'{"".join(out)}{table}</section>')


def _layer_error(report: dict) -> str:
    section = report.get("layer_error")
    if not section:
        return ""
    rows = [{"layer": x.get("layer"), "op": x.get("op"), "noise_to_signal": x.get("noise_to_signal"),
             "added_noise_to_signal": x.get("added_noise_to_signal")} for x in section.get("layers", [])[:10]]
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    return (f'<section id="layer_error"><h2>Layers int8 hurts most</h2><p class="s">measured by '
            f'{escape(str(section.get("tool")))}, ranked by {escape(label(str(section.get("ranked_by"))))}</p>'
            f'{generic_table({"layers": rows})}</section>')


def _rest(report: dict) -> str:
    model = report.get("model") or {}
    stages = [{"stage": s.get("name"), "seconds": s.get("seconds")} for s in report.get("stages") or []]
    keep = {k: report[k] for k in ("keep_float", "stem", "operators") if report.get(k)}
    return (f'<section id="model"><h2>Model</h2>{generic_table(model)}</section>'
            f'<section id="stages"><h2>Build steps</h2>{generic_table({"steps": stages})}</section>'
            + (f'<section id="other"><h2>Other</h2>{generic_table(keep)}</section>' if keep else ""))


def render_html(report: dict) -> str:
    """A self-contained HTML page for one target's ``report.json``."""
    body = "".join([_header(report), _cards(report), _budgets(report), _layers(report), _bytes(report),
                    _compression(report), _outputs(report), _layer_error(report), _rest(report)])
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f'content="width=device-width,initial-scale=1"><title>edgec: {escape(str(report.get("target")))}'
            f"</title><style>{CSS}</style></head><body>{body}<script>{SORT_JS}</script></body></html>\n")


def _index_row(target: str, report: dict, bench: dict | None) -> str:
    ok, word = _verdict(report)
    size, mem, ver = (report.get(k) or {} for k in ("size", "memory", "verification"))

    def used(n, budget):
        if n is None or not budget:
            return svg.human_bytes(n)
        share, cls = min(100.0, 100.0 * n / budget), "ok" if n <= budget else "bad"
        return (f'{svg.human_bytes(n)} / {svg.human_bytes(budget)}<div class="mini"><i class="{cls}" '
                f'style="width:{share:.1f}%"></i></div>')

    latency = f"{bench['artifact']['p50_ms']:.3f} ms ({escape(str(bench.get('runtime')))})" if bench and \
        (bench.get("artifact") or {}).get("p50_ms") is not None else "— (run edgec bench)"
    acc = ver.get("artifact_top1")
    accuracy = (f"top-1 {format_value('artifact_top1', acc)}" if acc is not None else
                f"agreement {format_value('top1_agreement', ver.get('top1_agreement'))}")
    cells = [f'<a href="{escape(target)}/report.html">{escape(target)}</a>', escape(str(report.get("format"))),
             used(size.get("flash_bytes"), mem.get("flash_budget_bytes")),
             used(mem.get("arena_bytes"), mem.get("ram_budget_bytes")), latency, accuracy,
             f'<span class="verdict {"ok" if ok else "bad"}">{word}</span>']
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _sweep_link(sweep: dict | None) -> str:
    if not sweep:
        return ""
    best = (sweep.get("best") or {}).get("id")
    return (f'<p class=sub id="sweep"><a href="sweep.html">Recipe sweep</a>: {len(sweep.get("trials", []))} trials, '
            f'{len(sweep.get("pareto", []))} on the Pareto front, '
            + (f"best {escape(best)} (edgec.toml)" if best else "no best trial") + "</p>")


def render_index(reports: dict[str, dict], benches: dict[str, dict] | None = None, *,
                 sweep: dict | None = None) -> str:
    """``OUT/index.html``: one row per target (format, flash, RAM, latency, accuracy, verdict), linked;
    with ``sweep`` (an ``edgec sweep`` result in the same OUT), a link to its page."""
    benches = benches or {}
    head = "".join(f"<th>{h}</th>" for h in ("target", "format", "flash / budget", "RAM / budget",
                                              "latency p50", "accuracy", "verdict"))
    rows = "".join(_index_row(t, r, benches.get(t)) for t, r in reports.items())
    model = escape(str(next(iter(reports.values()), {}).get("model", {}).get("source", "")))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>edgec: {model}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{model}</h1><p class=sub>{len(reports)} targets</p>"
            f'{_sweep_link(sweep)}</header>'
            f'<section id="targets"><table class="index" data-targets="{escape(" ".join(reports))}">'
            f"<thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></section></body></html>\n")
