"""Server-rendered SVG charts for the staff dashboard: no JavaScript, no chart library.

Every function returns a Chart: the SVG (role="img", with a <title> and <desc> that name what it
shows) and the same numbers as a small table for screen readers and copying. All text that
reaches the markup is escaped (see _html). Empty input gives a "no data yet" chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count

from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH = 640
CHAR_PX = 6.6  # the average width of a 12px system-ui character, for fitting labels
LABEL_CHARS = 26  # row labels longer than this are cut
_ids = count(1)


@dataclass
class Chart:
    title: str
    svg: SafeString
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    empty: bool = False
    note: str = ""


def _html(template: str, *args: object, **kwargs: object) -> SafeString:
    """format_html that keeps numbers as numbers, so "{:.1f}" works; all text is escaped."""

    def clean(value: object) -> object:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return value if is_number else conditional_escape(value)

    return mark_safe(template.format(*map(clean, args), **{k: clean(v) for k, v in kwargs.items()}))


def _fmt(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    if hi == lo:
        return (out_lo + out_hi) / 2
    return out_lo + (value - lo) / (hi - lo) * (out_hi - out_lo)


def _svg(title: str, description: str, height: float, body: Iterable[str]) -> SafeString:
    ident = f"chart{next(_ids)}"
    return _html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {w} {h}" width="100%" '
        'class="chart-svg" aria-labelledby="{i}-t {i}-d">'
        '<title id="{i}-t">{title}</title><desc id="{i}-d">{desc}</desc>{body}</svg>',
        w=WIDTH,
        h=round(height),
        i=ident,
        title=title,
        desc=description,
        body=mark_safe("".join(body)),  # each piece was built with _html
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return _html(
        '<text x="{:.1f}" y="{:.1f}" text-anchor="{}" {}>{}</text>',
        x,
        y,
        anchor,
        mark_safe(extra),
        text,
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = "#999", extra: str = "") -> str:
    return _html(
        '<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" {}/>',
        x1,
        y1,
        x2,
        y2,
        stroke,
        mark_safe(extra),
    )


def _axis_label(
    x: float, y: float, text: str, *, vertical: bool = False, anchor: str = "middle"
) -> str:
    extra = (
        f'class="axis-label" transform="rotate(-90 {x:.1f} {y:.1f})"'
        if vertical
        else ('class="axis-label"')
    )
    return _text(x, y, text, anchor, extra)


def empty_chart(title: str, message: str = "no data yet") -> Chart:
    svg = _svg(
        title,
        message,
        60,
        [
            '<rect x="0.5" y="0.5" width="639" height="59" fill="#f7f7f7" stroke="#ddd"/>',
            _text(WIDTH / 2, 35, message, "middle", 'fill="#666"'),
        ],
    )
    return Chart(title=title, svg=svg, empty=True)


def _y_axis(
    lo: float,
    hi: float,
    top: float,
    bottom: float,
    left: float,
    right: float,
    ticks: Sequence[float],
) -> list[str]:
    parts = []
    for tick in ticks:
        y = _scale(tick, lo, hi, bottom, top)
        parts.append(_line(left, y, right, y, "#e3e3e3"))
        parts.append(_text(left - 6, y + 4, _fmt(tick, 1 if tick != int(tick) else 0), "end"))
    return parts


def rating_over_time(
    series: dict[str, list[tuple[datetime, float | None, float | None, float | None]]],
    *,
    title: str = "Corrected overall rating per revision over time",
) -> Chart:
    """One line per revision: the bias-corrected mean at each analysis, with 95% whiskers."""
    points = {label: [p for p in pts if _finite(p[1])] for label, pts in series.items() if pts}
    points = {label: pts for label, pts in points.items() if pts}
    if not points:
        return empty_chart(title)
    times = [p[0].timestamp() for pts in points.values() for p in pts]
    t0, t1 = min(times), max(times)
    if t0 == t1:
        t0, t1 = t0 - 3600, t1 + 3600
    values = [v for pts in points.values() for p in pts for v in p[1:] if _finite(v)]
    lo, hi = min(1.0, math.floor(min(values))), max(5.0, math.ceil(max(values)))
    left, right, top, bottom = 60, WIDTH - 110, 16, 230
    parts = _y_axis(lo, hi, top, bottom, left, right, range(int(lo), int(hi) + 1))
    parts.append(_axis_label(16, (top + bottom) / 2, "corrected mean rating", vertical=True))
    first, last = datetime.fromtimestamp(t0), datetime.fromtimestamp(t1)
    parts.append(_text(left, bottom + 18, first.strftime("%Y-%m-%d %H:%M")))
    parts.append(_text(right, bottom + 18, last.strftime("%Y-%m-%d %H:%M"), "end"))
    parts.append(_axis_label((left + right) / 2, bottom + 36, "time of analysis"))
    rows = []
    for index, (label, pts) in enumerate(points.items()):
        colour = PALETTE[index % len(PALETTE)]
        xy = [
            (
                _scale(p[0].timestamp(), t0, t1, left + 8, right - 8),
                _scale(p[1], lo, hi, bottom, top),
            )
            for p in pts
        ]
        if len(xy) > 1:
            parts.append(
                _html(
                    '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>',
                    colour,
                    " ".join(f"{x:.1f},{y:.1f}" for x, y in xy),
                )
            )
        for (x, y), p in zip(xy, pts, strict=True):
            if _finite(p[2], p[3]):
                y_lo, y_hi = _scale(p[2], lo, hi, bottom, top), _scale(p[3], lo, hi, bottom, top)
                parts.append(_line(x, y_lo, x, y_hi, colour, 'stroke-width="1.5"'))
                parts.append(_line(x - 3, y_lo, x + 3, y_lo, colour))
                parts.append(_line(x - 3, y_hi, x + 3, y_hi, colour))
            parts.append(_html('<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>', x, y, colour))
            rows.append(
                [label, p[0].strftime("%Y-%m-%d %H:%M"), _fmt(p[1]), _fmt(p[2]), _fmt(p[3])]
            )
        legend_y = top + 14 + 18 * index
        parts.append(
            _html(
                '<rect x="{}" y="{}" width="12" height="12" fill="{}"/>',
                right + 14,
                legend_y - 10,
                colour,
            )
        )
        parts.append(_text(right + 32, legend_y, label))
    description = (
        f"{len(points)} revisions over {len(set(times))} analyses; y axis: corrected mean "
        "rating (1–5) with 95% intervals"
    )
    return Chart(
        title,
        _svg(title, description, bottom + 44, parts),
        ["revision", "analysis", "mean", "95% low", "95% high"],
        rows,
    )


def bar_chart(
    rows: Sequence[tuple[str, float | None, str]],
    *,
    title: str,
    description: str,
    domain: tuple[float, float] | None = None,
    columns: Sequence[str] = ("item", "value", "detail"),
    axis_label: str = "",
) -> Chart:
    """Horizontal bars: (label, value or None, a note shown after the bar)."""
    if not rows:
        return empty_chart(title)
    known = [v for _, v, _ in rows if _finite(v)]
    lo, hi = domain or (min([0.0, *known]), max([0.0, *known]) or 1.0)
    left, right, top, step = 190, WIDTH - 150, 10, 24
    zero = _scale(0.0, lo, hi, left, right)
    parts = []
    for index, (label, value, note) in enumerate(rows):
        y = top + index * step
        parts.append(_text(left - 8, y + 15, label[:30], "end"))
        if _finite(value):
            x = _scale(max(lo, min(hi, value)), lo, hi, left, right)
            parts.append(
                _html(
                    '<rect x="{:.1f}" y="{}" width="{:.1f}" height="16" fill="{}"/>',
                    min(x, zero),
                    y + 3,
                    max(abs(x - zero), 1.0),
                    PALETTE[0] if value >= 0 else PALETTE[5],
                )
            )
        parts.append(_text(right + 8, y + 15, note or _fmt(value)))
    bottom = top + len(rows) * step
    parts.append(_line(zero, top, zero, bottom, "#666"))
    height = bottom + 10
    if axis_label:
        parts.append(_line(left, bottom + 2, right, bottom + 2, "#999"))
        parts.append(_text(left, bottom + 16, _fmt(lo), "middle", 'class="tick"'))
        parts.append(_text(right, bottom + 16, _fmt(hi), "middle", 'class="tick"'))
        parts.append(_axis_label((left + right) / 2, bottom + 32, axis_label))
        height = bottom + 40
    table = [[label, _fmt(value), note] for label, value, note in rows]
    return Chart(title, _svg(title, description, height, parts), list(columns), table)


def interval_chart(
    rows: Sequence[tuple[str, float | None, float | None, float | None, str]],
    *,
    title: str,
    description: str,
    reference: float = 0.0,
    axis_label: str = "estimate",
    columns: Sequence[str] = ("item", "estimate", "low", "high", "detail"),
) -> Chart:
    """A dot per row with its interval as a whisker, and a reference line (e.g. 0).

    Each row is labelled in words on the right: the estimate, its interval and the row's note
    (e.g. how many comparisons it rests on), so no number needs decoding from the picture.
    """
    rows = [r for r in rows if _finite(r[1])]
    if not rows:
        return empty_chart(title)
    values = [reference] + [v for r in rows for v in r[1:4] if _finite(v)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    longest = max(len(r[0][:LABEL_CHARS]) for r in rows)
    left, right, top, step = max(60, 14 + longest * CHAR_PX), WIDTH - 250, 26, 34
    parts = []
    ref_x = _scale(reference, lo, hi, left, right)
    for index, (label, estimate, low, high, note) in enumerate(rows):
        y = top + index * step + 14
        parts.append(_text(left - 8, y + 4, label[:LABEL_CHARS], "end"))
        if _finite(low, high):
            x_lo, x_hi = _scale(low, lo, hi, left, right), _scale(high, lo, hi, left, right)
            parts.append(_line(x_lo, y, x_hi, y, PALETTE[0], 'stroke-width="2"'))
            parts.append(_line(x_lo, y - 5, x_lo, y + 5, PALETTE[0], 'stroke-width="2"'))
            parts.append(_line(x_hi, y - 5, x_hi, y + 5, PALETTE[0], 'stroke-width="2"'))
            bounds = f"{_fmt(low, signed=True)}, {_fmt(high, signed=True)}"
            interval = f"{_fmt(estimate, signed=True)} [{bounds}]"
        else:
            interval = f"{_fmt(estimate, signed=True)} (no interval)"
        x = _scale(estimate, lo, hi, left, right)
        parts.append(_html('<circle cx="{:.1f}" cy="{}" r="4" fill="{}"/>', x, y, PALETTE[5]))
        parts.append(_text(right + 10, y, interval))
        if note:
            parts.append(_text(right + 10, y + 13, note, extra='class="muted-text"'))
    bottom = top + len(rows) * step
    parts.append(_line(ref_x, top, ref_x, bottom, "#666", 'stroke-dasharray="4 3"'))
    parts.append(_text(left, bottom + 14, _fmt(lo)))
    parts.append(_text(right, bottom + 14, _fmt(hi), "end"))
    parts.append(_text(ref_x, bottom + 14, _fmt(reference, 0), "middle"))
    parts.append(_axis_label((left + right) / 2, bottom + 32, axis_label))
    parts.append(_text(right + 10, top - 10, "estimate [95% interval]", extra='class="axis-label"'))
    table = [[r[0], _fmt(r[1]), _fmt(r[2]), _fmt(r[3]), r[4]] for r in rows]
    return Chart(title, _svg(title, description, bottom + 42, parts), list(columns), table)


def _diverging(value: float) -> str:
    """White at 0, blue towards −1, red towards +1."""
    v = max(-1.0, min(1.0, value))
    target = (178, 24, 43) if v > 0 else (33, 102, 172)
    r, g, b = (round(255 + (c - 255) * abs(v)) for c in target)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    cells: dict[tuple[str, str], tuple[float | None, float | None, int]],
    *,
    title: str,
    description: str,
    min_n: int = 10,
) -> Chart:
    """Rows × columns of values in [-1, 1] (e.g. Spearman rho), with (value, p, n) per cell.

    A cell without a value says why: too few paired observations (n < min_n) or, with enough,
    one side that never varies. Column headers stand upright, so long names are never cut off.
    """
    if not cells:
        return empty_chart(title)
    row_names = sorted({r for r, _ in cells})
    col_names = sorted({c for _, c in cells})
    headers = [c.replace("_", " ")[:24] for c in col_names]
    left = 150
    top = 16 + max(len(h) for h in headers) * CHAR_PX
    cell_w = min(90.0, (WIDTH - left - 10) / len(col_names))
    cell_h = 26
    parts = []
    for j, header in enumerate(headers):
        x = left + j * cell_w + cell_w / 2 + 4
        parts.append(
            _text(x, top - 6, header, "start", f'transform="rotate(-90 {x:.1f} {top - 6:.1f})"')
        )
    table = []
    too_few = constant = 0
    for i, row in enumerate(row_names):
        y = top + i * cell_h
        parts.append(_text(left - 8, y + 17, row.replace("_", " ")[:22], "end"))
        for j, col in enumerate(col_names):
            value, p_value, n = cells.get((row, col), (None, None, 0))
            known = _finite(value)
            x = left + j * cell_w
            parts.append(
                _html(
                    '<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}" stroke="#fff"/>',
                    x,
                    y,
                    cell_w,
                    cell_h,
                    _diverging(value) if known else "#eeeeee",
                )
            )
            if known:
                text, colour = _fmt(value), "#fff" if abs(value) > 0.6 else "#222"
                why = ""
            elif n < min_n:
                text, colour = f"n={n}", "#555"
                why = f"not enough paired data (n = {n} < {min_n})"
                too_few += 1
            else:
                text, colour = "const", "#555"
                why = "undefined: the metric or the rating does not vary"
                constant += 1
            parts.append(_text(x + cell_w / 2, y + 17, text, "middle", f'fill="{colour}"'))
            if (row, col) in cells:
                table.append([row, col, _fmt(value), _fmt(p_value, 3), str(n), why])
    bottom = top + len(row_names) * cell_h
    notes = []
    if too_few:
        notes.append(
            f"Grey “n=…” cells: not enough paired data (fewer than {min_n} generations with "
            "both the metric and the rating), so no correlation is computed."
        )
    if constant:
        notes.append("Grey “const” cells: the metric or the rating has one value only.")
    return Chart(
        title,
        _svg(title, description, bottom + 10, parts),
        ["metric", "dimension", "rho", "p", "n", "why empty"],
        table,
        note=" ".join(notes),
    )


def experiment_chart(
    looks: Sequence[tuple[int, float | None, float | None, float | None, str]],
    *,
    min_effect: float,
    title: str = "Current experiment: candidate − control",
) -> Chart:
    """The estimated difference after each look with its always-valid band (confidence sequence)."""
    looks = [look for look in looks if _finite(look[1])]
    if not looks:
        return empty_chart(title, "no experiment ratings yet")
    values = [0.0, min_effect] + [v for look in looks for v in look[1:4] if _finite(v)]
    lo, hi = max(-4.0, min(values)), min(4.0, max(values))
    pad = (hi - lo) * 0.05 or 0.5
    lo, hi = lo - pad, hi + pad
    n0, n1 = min(look[0] for look in looks), max(look[0] for look in looks)
    left, right, top, bottom = 66, WIDTH - 20, 14, 220
    ticks = [t for t in range(math.ceil(lo), math.floor(hi) + 1)]
    parts = _y_axis(lo, hi, top, bottom, left, right, ticks)
    parts.append(
        _axis_label(16, (top + bottom) / 2, "candidate − control (rating points)", vertical=True)
    )

    def x_of(n: int) -> float:
        return _scale(n, n0, n1, left + 8, right - 8) if n1 > n0 else (left + right) / 2

    def y_of(v: float) -> float:
        return _scale(max(lo, min(hi, v)), lo, hi, bottom, top)

    banded = [look for look in looks if _finite(look[2], look[3])]
    if len(banded) > 1:
        upper = [f"{x_of(look[0]):.1f},{y_of(look[3]):.1f}" for look in banded]
        lower = [f"{x_of(look[0]):.1f},{y_of(look[2]):.1f}" for look in reversed(banded)]
        parts.append(
            _html(
                '<polygon points="{}" fill="{}" fill-opacity="0.25" stroke="none"/>',
                " ".join(upper + lower),
                PALETTE[4],
            )
        )
    for look in banded:
        parts.append(_line(x_of(look[0]), y_of(look[2]), x_of(look[0]), y_of(look[3]), PALETTE[0]))
    parts.append(_line(left, y_of(0.0), right, y_of(0.0), "#444"))
    if min_effect:
        parts.append(
            _line(
                left,
                y_of(min_effect),
                right,
                y_of(min_effect),
                PALETTE[2],
                'stroke-dasharray="5 4"',
            )
        )
        parts.append(
            _text(right - 4, y_of(min_effect) - 4, f"minimum effect {min_effect:+.2f}", "end")
        )
    points = [(x_of(look[0]), y_of(look[1])) for look in looks]
    if len(points) > 1:
        parts.append(
            _html(
                '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>',
                PALETTE[5],
                " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
            )
        )
    for x, y in points:
        parts.append(_html('<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>', x, y, PALETTE[5]))
    parts.append(_text(left, bottom + 16, f"{n0}"))
    parts.append(_text(right, bottom + 16, f"{n1}", "end"))
    parts.append(_axis_label((left + right) / 2, bottom + 34, "ratings so far (both arms)"))
    description = (
        f"difference in corrected overall rating after {len(looks)} looks; shaded: the "
        "always-valid 95% band; promote when it is above 0, roll back when below"
    )
    table = [
        [
            str(look[0]),
            _fmt(look[1], signed=True),
            _fmt(look[2], signed=True),
            _fmt(look[3], signed=True),
            look[4],
        ]
        for look in looks
    ]
    return Chart(
        title,
        _svg(title, description, bottom + 44, parts),
        ["ratings", "estimate", "lower", "upper", "decision"],
        table,
    )


def line_chart(
    xs: Sequence[float],
    ys: Sequence[float | None],
    *,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    x_max: float | None = None,
    colour: str = PALETTE[0],
) -> Chart:
    """One series over x (e.g. a per-frame measure over the video's time)."""
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if _finite(x, y)]
    if not points:
        return empty_chart(title)
    x_hi = x_max if x_max is not None and x_max > 0 else max(x for x, _ in points)
    y_lo = min(0.0, min(y for _, y in points))
    y_hi = max(y for _, y in points) or 1.0
    y_hi += (y_hi - y_lo) * 0.05
    left, right, top, bottom = 74, WIDTH - 14, 12, 170
    ticks = [y_lo + (y_hi - y_lo) * k / 4 for k in range(5)]
    parts = []
    for tick in ticks:
        y = _scale(tick, y_lo, y_hi, bottom, top)
        parts.append(_line(left, y, right, y, "#e3e3e3"))
        digits = 0 if y_hi >= 50 else (1 if y_hi >= 5 else 2)
        parts.append(_text(left - 6, y + 4, _fmt(tick, digits), "end", 'class="tick"'))
    parts.append(_axis_label(16, (top + bottom) / 2, y_label, vertical=True))
    # Points without a sample (None) are skipped: the line joins its neighbours.
    xy = [
        (_scale(x, 0.0, x_hi, left, right), _scale(y, y_lo, y_hi, bottom, top)) for x, y in points
    ]
    if len(xy) > 1:
        parts.append(
            _html(
                '<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>',
                colour,
                " ".join(f"{x:.1f},{y:.1f}" for x, y in xy),
            )
        )
    else:
        ((x, y),) = xy
        parts.append(_html('<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>', x, y, colour))
    parts.append(_line(left, bottom, right, bottom, "#999"))
    for k in range(5):
        x_value = x_hi * k / 4
        anchor = "start" if k == 0 else ("end" if k == 4 else "middle")
        parts.append(
            _text(
                _scale(x_value, 0.0, x_hi, left, right),
                bottom + 16,
                _fmt(x_value, 1),
                anchor,
                'class="tick"',
            )
        )
    parts.append(_axis_label((left + right) / 2, bottom + 34, x_label))
    table = [[_fmt(x, 2), _fmt(y, 3)] for x, y in points]
    return Chart(title, _svg(title, description, bottom + 42, parts), [x_label, y_label], table)
