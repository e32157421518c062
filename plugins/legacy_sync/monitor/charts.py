"""Server-side SVG charts for the sync monitor: no JavaScript, no network, readable without colour.

Each chart is a self-contained ``<svg>`` string (values escaped), with ``<title>`` tooltips the
browser shows on hover and an ``aria-label`` that says what the picture says.
"""

from __future__ import annotations

from html import escape

from legacy_sync.ledger import Status
from legacy_sync.monitor.queries import RunPoint

# Colour-blind-safe palette (Okabe-Ito); each series also has its own legend entry.
SERIES = (
    ("records_created", "created", "#009E73"),
    ("records_updated", "updated", "#0072B2"),
    ("records_unchanged", "unchanged", "#BBBBBB"),
    ("records_failed", "rejected", "#D55E00"),
)
FAILED_COLOUR = "#CC0000"
FONT = "font-family='system-ui, sans-serif' font-size='11'"


def _fmt(n: float) -> str:
    n = int(n)
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def _short_time(point: RunPoint) -> str:
    return point.started.strftime("%d %b %H:%M")


def _legend(x: float, y: float) -> list[str]:
    parts = []
    for _, label, colour in SERIES:
        parts.append(f"<rect x='{x}' y='{y - 9}' width='10' height='10' fill='{colour}'/>")
        parts.append(f"<text x='{x + 14}' y='{y}' {FONT}>{label}</text>")
        x += 24 + 7 * len(label)
    parts.append(
        f"<text x='{x}' y='{y}' {FONT} fill='{FAILED_COLOUR}' font-weight='bold'>✕ table failed</text>"
    )
    return parts


def records_per_table(runs: list[RunPoint], width: int = 760) -> str:
    """One row per table: a stacked bar per run (created/updated/unchanged/rejected).

    Each row has its own scale (its largest run is the full height, labelled on the left), so a
    small table's rejects stay visible next to a big one's; a failed table shows a red cross.
    """
    tables = sorted({name for point in runs for name in point.tables})
    if not runs or not tables:
        return "<p class='empty'>No runs yet.</p>"
    label_w, row_h, bar_area_h, top = 130, 36, 26, 26
    plot_w = width - label_w - 10
    step = plot_w / len(runs)
    bar_w = max(2.0, min(28.0, step * 0.7))
    height = top + row_h * len(tables) + 22
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='100%'"
        f" role='img' aria-label='Records per table over the last {len(runs)} runs'>",
        *_legend(label_w, 14),
    ]
    for row, table in enumerate(tables):
        y0 = top + row * row_h
        base = y0 + bar_area_h
        peak = max(
            (sum(int(p.tables[table][key]) for key, _, _ in SERIES) for p in runs if table in p.tables),
            default=0,
        )
        out.append(f"<text x='0' y='{base - 11}' {FONT} font-weight='bold'>{escape(table)}</text>")
        out.append(f"<text x='0' y='{base}' {FONT} fill='#666'>max {_fmt(peak)}</text>")
        out.append(
            f"<line x1='{label_w}' y1='{base + 0.5}' x2='{width - 10}' y2='{base + 0.5}' stroke='#ddd'/>"
        )
        for i, point in enumerate(runs):
            x = label_w + i * step + (step - bar_w) / 2
            stats = point.tables.get(table)
            if stats is None:
                continue
            tip = escape(
                f"{table} · {point.run_id} · {stats['status']}\n"
                + ", ".join(f"{label} {int(stats[key]):,}" for key, label, _ in SERIES)
            )
            out.append(f"<g><title>{tip}</title>")
            if stats["status"] == Status.FAILED:
                cx, cy = x + bar_w / 2, base - 8
                out.append(
                    f"<text x='{cx}' y='{cy}' text-anchor='middle' {FONT} font-size='14'"
                    f" fill='{FAILED_COLOUR}' font-weight='bold'>✕</text>"
                )
            y = float(base)
            for key, _, colour in SERIES:
                value = int(stats[key])
                if value <= 0 or peak <= 0:
                    continue
                h = max(1.0, bar_area_h * value / peak)
                y -= h
                out.append(
                    f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar_w:.1f}' height='{h:.1f}' fill='{colour}'/>"
                )
            out.append("</g>")
    axis_y = top + row_h * len(tables) + 12
    for i in sorted({0, len(runs) // 2, len(runs) - 1}):
        x = label_w + i * step + step / 2
        anchor = (
            "start"
            if i == 0 and len(runs) > 1
            else ("end" if i == len(runs) - 1 and len(runs) > 1 else "middle")
        )
        out.append(
            f"<text x='{x:.1f}' y='{axis_y}' text-anchor='{anchor}' {FONT} fill='#666'>"
            f"{_short_time(runs[i])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def rejects_over_time(runs: list[RunPoint], width: int = 760, height: int = 200) -> str:
    """Rejected records per run, oldest to newest; runs with a failed table are marked."""
    if not runs:
        return "<p class='empty'>No runs yet.</p>"
    left, right, top, bottom = 50, 10, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(p.rejected for p in runs), 1)
    step = plot_w / len(runs)
    bar_w = max(2.0, min(36.0, step * 0.7))
    total = sum(p.rejected for p in runs)
    failed_runs = sum(1 for p in runs if p.failed_tables)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='100%' role='img'"
        f" aria-label='Rejected records per run: {total:,} over the last {len(runs)} runs,"
        f" {failed_runs} runs with a failed table'>",
    ]
    ticks = sorted({0, peak, *((peak // 2,) if peak >= 4 else ())})
    for tick in ticks:
        y = top + plot_h * (1 - tick / peak)
        out.append(f"<line x1='{left}' y1='{y:.1f}' x2='{width - right}' y2='{y:.1f}' stroke='#eee'/>")
        out.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' {FONT} fill='#666'>{_fmt(tick)}</text>"
        )
    for i, point in enumerate(runs):
        x = left + i * step + (step - bar_w) / 2
        h = plot_h * point.rejected / peak
        detail = ", ".join(
            f"{name} {int(t['records_failed']):,}"
            for name, t in sorted(point.tables.items())
            if t["records_failed"]
        )
        tip = f"{point.run_id}\n{point.rejected:,} rejected" + (f" ({detail})" if detail else "")
        if point.failed_tables:
            tip += "\nfailed: " + ", ".join(point.failed_tables)
        out.append(f"<g><title>{escape(tip)}</title>")
        out.append(
            f"<rect x='{x:.1f}' y='{top + plot_h - h:.1f}' width='{bar_w:.1f}' height='{max(h, 0.5):.1f}'"
            f" fill='{SERIES[3][2]}'/>"
        )
        if point.failed_tables:
            out.append(
                f"<text x='{x + bar_w / 2:.1f}' y='{top + plot_h - h - 3:.1f}' text-anchor='middle' {FONT}"
                f" font-size='13' fill='{FAILED_COLOUR}' font-weight='bold'>✕</text>"
            )
        out.append("</g>")
    for i in sorted({0, len(runs) // 2, len(runs) - 1}):
        x = left + i * step + step / 2
        out.append(
            f"<text x='{x:.1f}' y='{height - 14}' text-anchor='middle' {FONT} fill='#666'>"
            f"{_short_time(runs[i])}</text>"
        )
    out.append(
        f"<text x='{width - right}' y='{height - 1}' text-anchor='end' {FONT} fill='{FAILED_COLOUR}'>"
        "✕ run with a failed table</text>"
    )
    out.append("</svg>")
    return "".join(out)
