"""The worklist sparkline: a tiny CTC trend for each row, as hand-written SVG.

On the trend chart's symlog scale and in its colours (chart_geometry,
chart_data), without matplotlib: `sparkline_svg` says why. Like the chart, it
has one point per sample: `assessed_sparkline_svg` draws a patient's
assessments so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from html import escape

from patients import rules, wording
from patients.reports.chart_data import CUTOFF_COLOUR, STYLES, TRACE_COLOUR, plotted_points
from patients.reports.chart_geometry import MIN_DATA_TOP, symlog_scalar


def assessed_sparkline_svg(
    assessments: Sequence[rules.DrawAssessment], cutoff: int | None
) -> bytes:
    """A patient's sparkline from the rules' assessments: one point per sample, as the chart.

    Tubes drawn together are one point; a rejected or failed tube beside a
    sample is not a point of its own; a lower bound is said as "> 1000".
    """
    points = plotted_points(assessments)
    rates = [a.rate_per_7_5_ml if a.evaluable else None for a in points]
    censored = {index for index, a in enumerate(points) if a.censored}
    days = [a.draw.drawn_on for a in points]
    return sparkline_svg(rates, cutoff, censored=censored, days=days)


def sparkline_svg(
    rates: Sequence[float | None],
    cutoff: int | None,
    *,
    label: str = "",
    censored: Collection[int] = (),
    days: Sequence[date] | None = None,
) -> bytes:
    """A tiny trend for a worklist row: the counts on the chart's symlog scale.

    Hand-written SVG rather than matplotlib: a worklist shows dozens of rows and
    a matplotlib figure costs milliseconds each and repeats element ids when
    inlined. Numbers only go in, so nothing needs escaping except `label`.
    `None` is a draw that was not evaluable: it keeps its place with no point.
    The dashed line is the cut-off; the last point is larger, in its
    category's shape (triangle unfavourable, circle favourable). `censored`:
    the indices of rates that are lower bounds (always unfavourable). `days`:
    the day of each rate, to space the points by date as the chart does (three
    weeks apart look three times as far apart as one week); without them, or all
    on one day, evenly.
    """
    width, height, pad = 120.0, 28.0, 4.0
    points = [(i, rate) for i, rate in enumerate(rates) if rate is not None]
    top = symlog_scalar(max([MIN_DATA_TOP, 2 * (cutoff or 0), *(r for _, r in points)]))
    positions = _positions(rates, days)

    def xy(i: int, rate: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * positions[i]
        return round(x, 1), round(height - pad - (height - 2 * pad) * symlog_scalar(rate) / top, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
        f'role="img" aria-label="{escape(label or _spark_label(rates, cutoff, censored))}">'
    ]
    if cutoff is not None:
        y = xy(0, cutoff)[1]
        parts.append(
            f'<line x1="0" y1="{y}" x2="{width:g}" y2="{y}" stroke="{CUTOFF_COLOUR}" '
            'stroke-width="0.8" stroke-dasharray="3 2"/>'
        )
    coords = [xy(i, r) for i, r in points]
    if len(coords) > 1:
        path = " ".join(f"{x},{y}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{TRACE_COLOUR}"/>')
    for k, ((x, y), (i, rate)) in enumerate(zip(coords, points, strict=True)):
        last = k == len(coords) - 1
        parts.append(_spark_point(x, y, rate, cutoff, last=last, censored=i in censored))
    parts.append("</svg>")
    return "".join(parts).encode()


def _positions(rates: Sequence[float | None], days: Sequence[date] | None) -> list[float]:
    """Each point's place across the sparkline, from 0 (the first) to 1 (the last)."""
    count = len(rates)
    if days is not None and len(days) == count and count > 1 and days[-1] > days[0]:
        total = (days[-1] - days[0]).days
        return [(day - days[0]).days / total for day in days]
    span = max(count - 1, 1)
    return [i / span for i in range(max(count, 1))]


def _spark_point(
    x: float, y: float, rate: float, cutoff: int | None, *, last: bool, censored: bool
) -> str:
    category = rules.categorize(rate, cutoff, censored=censored) if cutoff is not None else None
    colour = STYLES[category].colour
    if not last:
        return f'<circle cx="{x}" cy="{y}" r="1.6" fill="{colour}"/>'
    if category is rules.Category.UNFAVOURABLE:
        return (
            f'<polygon points="{x:g},{y - 4.5:g} {x - 4.2:g},{y + 3:g} {x + 4.2:g},{y + 3:g}" '
            f'fill="{colour}" stroke="#fff" stroke-width="0.6"/>'
        )
    return f'<circle cx="{x}" cy="{y}" r="3.4" fill="{colour}" stroke="#fff" stroke-width="0.6"/>'


def _spark_label(
    rates: Sequence[float | None], cutoff: int | None, censored: Collection[int]
) -> str:
    first = max(len(rates) - 6, 0)
    shown = [
        _spark_rate(rate, first + index in censored) for index, rate in enumerate(rates[first:])
    ]
    if not shown:
        return "No CTC draws"
    cut = f"; cut-off {cutoff}" if cutoff is not None else ""
    return f"CTC per 7.5 mL, oldest to newest: {', '.join(shown)}{cut}"


def _spark_rate(rate: float | None, censored: bool) -> str:
    if rate is None:
        return "not evaluable"
    return f"> {wording.format_rate(rate)}" if censored else wording.format_rate(rate)
