"""Inline SVG pictures for report.html: budget gauges, stacked bytes, waterfall, confusion, histogram.

Plain strings, no plotting library: the page must open offline, print, and come out byte-identical
for the same report. Every function takes numbers and returns one ``<svg>`` element whose
``data-*`` attributes carry the numbers drawn, so a test (or a script) can read them back.
"""

from __future__ import annotations

from html import escape

USED, FREE, RESERVED, OVER = "#2b6cb0", "#e2e8f0", "#a0aec0", "#c53030"
PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#718096", "#d69e2e")


def human_bytes(n: int | float | None) -> str:
    """``91008`` -> ``88.9 KiB`` (binary units, as budgets are given in KiB/MiB)."""
    if n is None:
        return "—"
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n):,} B"


def _svg(width: int, height: int, body: str, cls: str, **data) -> str:
    attrs = "".join(f' data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in data.items() if v is not None)
    return (f'<svg class="{cls}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" xmlns="http://www.w3.org/2000/svg"{attrs}>{body}</svg>')


def _text(x: float, y: float, s: str, anchor: str = "start", cls: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(s)}</text>'


def gauge(label: str, used: int, budget: int, reserved: int | None = None) -> str:
    """A bar for one memory: the model's use against the budget, the reserve drawn after it.

    The bar's full length is the device's memory (budget + reserve); past the budget it turns red.
    """
    width, height, left, bar = 560, 58, 0, 520
    reserved = reserved or 0
    total = max(budget + reserved, used, 1)
    scale = bar / total
    inside = min(used, budget) * scale
    parts = [f'<rect x="{left}" y="18" width="{bar}" height="18" fill="{FREE}"/>',
             f'<rect x="{left + budget * scale:.1f}" y="18" width="{reserved * scale:.1f}" height="18" '
             f'fill="{RESERVED}"/>',
             f'<rect class="used" x="{left}" y="18" width="{inside:.1f}" height="18" fill="{USED}"/>']
    if used > budget:
        parts.append(f'<rect class="over" x="{left + budget * scale:.1f}" y="18" '
                     f'width="{(used - budget) * scale:.1f}" height="18" fill="{OVER}"/>')
    parts.append(f'<line x1="{left + budget * scale:.1f}" y1="12" x2="{left + budget * scale:.1f}" y2="42" '
                 'stroke="#1a202c" stroke-width="2"/>')
    share = 100.0 * used / budget if budget else float("inf")
    parts.append(_text(left, 12, f"{label}: {human_bytes(used)} of {human_bytes(budget)} ({share:.1f}%)", cls="b"))
    note = f"budget {human_bytes(budget)}" + (f" + reserve {human_bytes(reserved)}" if reserved else "")
    parts.append(_text(left, 54, note, cls="s"))
    if used > budget:
        parts.append(_text(bar, 54, f"over by {human_bytes(used - budget)}", "end", "s bad"))
    return _svg(width, height, "".join(parts), "gauge", label=label, used=used, budget=budget, reserved=reserved)


def stacked(parts: list[tuple[str, int]], title: str) -> str:
    """One horizontal bar split into named byte counts, with a legend below."""
    total = sum(v for _, v in parts) or 1
    width, bar = 560, 520
    body, x = [], 0.0
    legend = []
    for i, (name, value) in enumerate(parts):
        w = bar * value / total
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<rect x="{x:.1f}" y="6" width="{w:.1f}" height="20" fill="{color}"><title>{escape(name)}: '
                    f'{value:,} B</title></rect>')
        x += w
        lx, ly = (i % 3) * 180, 44 + (i // 3) * 16
        legend.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                      + _text(lx + 14, ly, f"{name} {human_bytes(value)} ({100 * value / total:.1f}%)", cls="s"))
    height = 44 + ((len(parts) + 2) // 3) * 16
    return _svg(width, height, "".join(body + legend), "stacked", title=title, total=total)


def waterfall(steps: list[tuple[str, int | None, str]]) -> str:
    """Size after each step (label, bytes or None, caption): floating bars show what each step removed."""
    known = [b for _, b, _ in steps if b is not None]
    top = max(known or [1])
    width, plot_h, col = 560, 150, 560 // max(len(steps), 1)
    body, previous = [], None
    for i, (label, size, caption) in enumerate(steps):
        x = i * col + 8
        if size is not None:
            y_new = 20 + plot_h * (1 - size / top)
            if previous is None or i == len(steps) - 1:
                body.append(f'<rect x="{x}" y="{y_new:.1f}" width="{col - 16}" height="{20 + plot_h - y_new:.1f}" '
                            f'fill="{USED}"/>')
            else:
                y_old = 20 + plot_h * (1 - previous / top)
                y0, y1 = sorted((y_old, y_new))
                color = "#38a169" if size <= previous else OVER
                body.append(f'<rect x="{x}" y="{y0:.1f}" width="{col - 16}" height="{max(y1 - y0, 1):.1f}" '
                            f'fill="{color}"/>')
            body.append(_text(x + (col - 16) / 2, y_new - 4, human_bytes(size), "middle", "s"))
            previous = size
        else:
            body.append(_text(x + (col - 16) / 2, 20 + plot_h - 4, "size not measured", "middle", "s"))
        body.append(_text(x + (col - 16) / 2, 20 + plot_h + 16, label, "middle", "b"))
        body.append(_text(x + (col - 16) / 2, 20 + plot_h + 30, caption, "middle", "s"))
    return _svg(width, plot_h + 56, "".join(body), "waterfall", steps=len(steps))


def confusion(matrix: list[list[int]]) -> str:
    """Heat map of float class (rows) x artifact class (columns); off-diagonal cells are disagreements."""
    n = len(matrix)
    cell = max(14, min(32, 320 // max(n, 1)))
    peak = max((max(row) for row in matrix), default=1) or 1
    size = 40 + n * cell
    body = [_text(40 + n * cell / 2, 12, "artifact top-1 →", "middle", "s"),
            f'<text x="10" y="{40 + n * cell / 2:.1f}" transform="rotate(-90 10 {40 + n * cell / 2:.1f})" '
            f'text-anchor="middle" class="s">float top-1 →</text>']
    for i, row in enumerate(matrix):
        body.append(_text(34, 40 + i * cell + cell * 0.65, str(i), "end", "s"))
        body.append(_text(40 + i * cell + cell / 2, 32, str(i), "middle", "s"))
        for j, count in enumerate(row):
            if i == j:
                color = f"rgba(43,108,176,{0.12 + 0.88 * count / peak:.3f})" if count else "#f7fafc"
            else:
                color = f"rgba(197,48,48,{0.35 + 0.65 * count / peak:.3f})" if count else "#f7fafc"
            body.append(f'<rect x="{40 + j * cell}" y="{36 + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                        f'fill="{color}"><title>float {i}, artifact {j}: {count}</title></rect>')
            if count:
                body.append(_text(40 + j * cell + cell / 2, 36 + i * cell + cell * 0.65, str(count), "middle",
                                  "s cm"))
    off = sum(c for i, row in enumerate(matrix) for j, c in enumerate(row) if i != j)
    return _svg(size + 4, size + 4, "".join(body), "confusion", classes=n, disagreements=off)


def histogram(edges: list[float], counts: list[int], xlabel: str) -> str:
    """Bars of counts per bin (log-free: small bins stay visible by a 1-pixel minimum)."""
    width, plot_h, bar = 560, 120, 520
    peak = max(counts or [1]) or 1
    w = bar / max(len(counts), 1)
    body = []
    for i, c in enumerate(counts):
        h = plot_h * c / peak if c else 0
        body.append(f'<rect x="{20 + i * w:.1f}" y="{10 + plot_h - max(h, 1 if c else 0):.1f}" width="{w - 1:.1f}" '
                    f'height="{max(h, 1 if c else 0):.1f}" fill="{USED}"><title>{edges[i]:.4g}–{edges[i + 1]:.4g}: '
                    f'{c}</title></rect>')
    body.append(_text(20, plot_h + 26, f"{edges[0]:.3g}", cls="s"))
    body.append(_text(20 + bar, plot_h + 26, f"{edges[-1]:.3g}", "end", "s"))
    body.append(_text(20 + bar / 2, plot_h + 26, xlabel, "middle", "s"))
    return _svg(width, plot_h + 34, "".join(body), "histogram", total=sum(counts))
