"""A patient's CTC trend chart: the matplotlib figure and its image bytes.

Takes plain data (the frozen dataclasses of patients.rules and of
patients.reports.chart_data) and knows nothing about requests, querysets or the
database. Uses matplotlib's Figure directly, never pyplot: pyplot keeps global
state that leaks memory and is not safe across threads in a web server.
`trend_figure` draws the figure (bands, doxorubicin windows, cut-off, cycles,
imaging, one marker per sample, labels, notes, legend) and the encoders only
turn it into bytes, so the PDF report can reuse it. The cache key changes with
the drawing, so it is here too. Where labels go is chart_geometry's; the worklist sparkline and the
chart's text alternative are in sparkline and chart_text.

Every category, interval, chance and flag shown comes from the assessments
made by patients.rules, so the chart and the table cannot disagree. The chart
shows counts, intervals and the rules' flags; it never draws a conclusion about
the disease or the treatment.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import date
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, num2date
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.path import Path
from matplotlib.ticker import NullLocator

from patients import rules, wording
from patients.reports.chart_data import (
    BAND_TINTS,
    CUTOFF_COLOUR,
    DOXORUBICIN_COLOUR,
    IMAGING_COLOUR,
    LOWER_BOUND,
    NOT_EVALUABLE,
    STYLES,
    TEXT_COLOUR,
    TRACE_COLOUR,
    UNFAVOURABLE_COLOUR,
    ChartData,
    ChartIdentity,
    MarkerStyle,
    chance_of,
    chance_percent,
    doxorubicin_windows,
    plotted_points,
    point_key,
    rate_of,
    tubes_of,
)
from patients.reports.chart_geometry import (
    IMAGING_FONT_PT,
    LINE_STRIP_PT,
    LINSCALE,
    LINTHRESH,
    NOTE_ROWS,
    REGIMEN_OFFSET_PT,
    ROW_HEIGHT_PT,
    ROW_OFFSET_PT,
    Box,
    Frame,
    Occupied,
    chart_frame,
    day_num,
    fit_text,
    free_slot,
    marker_box,
    text_width_pt,
    y_ticks,
)
from patients.reports.chart_svg import inline, with_point_titles
from patients.reports.chart_text import identity_text, point_tooltips

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

Y_LABEL = "CTCs per 7.5 mL"
# The axis is linear up to LINTHRESH and logarithmic above: said on the axis itself.
Y_SCALE_NOTE = f"linear to {LINTHRESH:g}, log scale above {LINTHRESH:g}"
NO_DRAWS_TEXT = "No CTC draws recorded yet"


# rc_context changes process-wide settings: one encoder at a time holds them.
RC_LOCK = threading.Lock()
# A light backing so labels stay readable over lines and bands.
_TEXT_BACKGROUND = {
    "boxstyle": "square,pad=0.1",
    "facecolor": "white",
    "edgecolor": "none",
    "alpha": 0.8,
}
_SVG_RC: dict[RcKeyType, Any] = {"svg.fonttype": "none", "svg.hashsalt": "ctctrack"}

# Short words beside a flagged marker, most important first, with their key.
# They name what the rules found and nothing more.
_FLAG_LABELS: dict[str, tuple[str, str]] = {
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: ("↑ conv.", "converted to unfavourable"),
    rules.FlagCode.BASELINE_UNFAVOURABLE: ("baseline", "unfavourable at baseline"),
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: ("↓ conv.", "converted to favourable"),
    rules.FlagCode.RISE_BEYOND_NOISE: ("rise", "rise beyond counting noise"),
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: ("persist.", "still unfavourable"),
}
# Beside a point near the cut-off: "53% ≥ cut-off", its key in the legend's title.
CHANCE_SUFFIX = " ≥ cut-off"
CHANCE_KEY = "n% ≥ cut-off = chance that the true count is at or above the cut-off"
DOXORUBICIN_LABEL = "doxorubicin window"
# Before the words of flags that are all acknowledged (the key says so).
ACKNOWLEDGED_MARK = "✓"
_LEGEND_PT = 7.5
_LEGEND_SIDE_PT = 8  # the figure's padding either side of the legend

# The lower-bound marker: a bar at the bound and an arrow rising from it. A
# path marker is scaled about its origin, which is the point: all of it is at
# or above the bound.
_UP_ARROW = Path(
    [(-0.45, 0), (0.45, 0), (0, 0), (0, 0.55), (-0.4, 0.55), (0, 1), (0.4, 0.55), (0, 0.55)],
    [
        Path.MOVETO,
        Path.LINETO,
        Path.MOVETO,
        Path.LINETO,
        Path.MOVETO,
        Path.LINETO,
        Path.LINETO,
        Path.CLOSEPOLY,
    ],
)
_MARKER_PATHS: dict[str, Path] = {LOWER_BOUND.marker: _UP_ARROW}


# --- the trend chart ------------------------------------------------------


def trend_figure(
    data: ChartData,
    *,
    width_in: float = 9.0,
    height_in: float = 4.2,
    identity: ChartIdentity | None = None,
    point_ids: bool = False,
) -> Figure:
    """The CTC trend of one patient as a matplotlib Figure, not yet rendered.

    With `identity`, a line above the plot says whose chart it is and when it was
    made: every picture that leaves the app (a PNG or SVG download) carries it.
    With `point_ids`, each point is an artist of its own with an id, for the SVG's
    tooltips (see _draw_points).
    """
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    if identity is not None:
        fig.suptitle(
            identity_text(identity),
            x=0.01,
            ha="left",
            fontsize=8.5,
            color=TEXT_COLOUR,
            fontweight="bold",
            parse_math=False,
        )
    ax = fig.add_subplot()
    frame = chart_frame(data, width_in, height_in)
    plotted = plotted_points(data.assessments)
    _style_axes(ax, frame, data.cutoff)
    occupied = _draw_therapy_lines(ax, frame, data)
    doxorubicin = _draw_doxorubicin_windows(ax, frame, data)
    _draw_cutoff(ax, frame, data.cutoff, data.cancer_type)
    _draw_today(ax, data.today)
    _draw_cycles(ax, frame, data.cycles)
    note_rows = 0 if data.cutoff is not None else NOTE_ROWS  # the no-cut-off note's box
    occupied += _draw_imaging(ax, frame, first_row=note_rows)
    _draw_points(ax, frame, plotted, one_per_point=point_ids)
    shown = _draw_point_labels(ax, frame, plotted, occupied, data.cutoff, data.acknowledged)
    _draw_notes(ax, frame, data, plotted)
    _draw_legend(fig, data, plotted, shown, doxorubicin=doxorubicin, width_pt=width_in * 72)
    return fig


class _MonthOnFirstTick(ConciseDateFormatter):
    """ConciseDateFormatter, but a range starting mid-month names the month on its first
    tick ("15 Oct", then "22", "Nov", "8"...): a bare "15" says no month until the 1st."""

    def format_ticks(self, values: Any) -> list[str]:
        labels = list(super().format_ticks(values))
        if labels and labels[0].isdigit():  # a day of the month
            first = num2date(values[0])
            labels[0] = f"{first.day} {first:%b}"
        return labels


def _style_axes(ax: Axes, frame: Frame, cutoff: int | None) -> None:
    ax.set_yscale("symlog", linthresh=LINTHRESH, linscale=LINSCALE)
    ax.set_ylim(frame.y_bottom, frame.y_top)
    ax.set_xlim(frame.x0, frame.x1)
    ticks = y_ticks(frame, cutoff)
    ax.set_yticks(ticks, [f"{tick:,}" for tick in ticks])
    ax.yaxis.set_minor_locator(NullLocator())
    # A chart that stays within the linear part needs no note about the log part.
    label = f"{Y_LABEL}\n({Y_SCALE_NOTE})" if frame.y_top > LINTHRESH else Y_LABEL
    ax.set_ylabel(label, fontsize=9, color=TEXT_COLOUR, linespacing=1.3)
    ax.xaxis_date()
    locator = AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    # The year once, as the offset or under January, never "2025-May"; every
    # tick of a months' scale names its month, January included ("Jan" over "2026").
    years = ["", "%Y", "%Y", "%Y", "%Y", "%Y"]
    zeros = ["", "%b\n%Y", "%b", "%b-%d", "%H:%M", "%H:%M"]
    formatter = _MonthOnFirstTick(locator, offset_formats=years, zero_formats=zeros)
    ax.xaxis.set_major_formatter(formatter)
    ax.tick_params(labelsize=8, colors=TEXT_COLOUR)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#777777")


def _line_bands(data: ChartData) -> list[tuple[rules.LineIn, date, date]]:
    """Each therapy line from its start to the next line's start, its end date or today."""
    ordered = sorted(data.lines, key=lambda line: (line.start_date, line.line_number))
    bands = []
    for index, line in enumerate(ordered):
        if line.start_date > data.today:
            continue
        ends = [data.today]
        if index + 1 < len(ordered):
            ends.append(ordered[index + 1].start_date)
        if line.id in data.line_end_dates:
            ends.append(data.line_end_dates[line.id])
        bands.append((line, line.start_date, max(min(ends), line.start_date)))
    return bands


def _draw_therapy_lines(ax: Axes, frame: Frame, data: ChartData) -> list[Box]:
    """Alternating tinted bands named "L1 Paclitaxel"; returns where the names are."""
    boxes = []
    for index, (line, start, end) in enumerate(_line_bands(data)):
        x0, x1 = day_num(start), day_num(end)
        # A strip along the top, under the regimen's name: a band over the whole
        # height would tint the unfavourable region into another colour.
        strip = 1 - LINE_STRIP_PT / frame.height_pt
        ax.axvspan(x0, x1, ymin=strip, ymax=1, color=BAND_TINTS[index % 2], lw=0, zorder=0.2)
        left = frame.x_pt(x0) + 3
        name = fit_text(f"L{line.line_number} {line.regimen}".strip(), frame.x_pt(x1) - left - 3, 8)
        if not name:
            continue
        _top_label(ax, x0, name, dx=3, dy=-REGIMEN_OFFSET_PT, fontsize=8, colour=TEXT_COLOUR)
        top = frame.height_pt - REGIMEN_OFFSET_PT
        boxes.append(Box(left, top - 11, left + text_width_pt(name, 8), top))
    return boxes


def _draw_doxorubicin_windows(ax: Axes, frame: Frame, data: ChartData) -> bool:
    """A light band over days 1 to 6 after each doxorubicin dose; whether any is in view.

    Each band runs from half a day before its first day to half a day after its
    last, so that a draw on day 1 or day 6 lies inside it and one on the dose
    day or on day 7 outside.
    """
    shown = False
    for first, last in doxorubicin_windows(data.lines, data.cycles):
        x0, x1 = day_num(first) - 0.5, day_num(last) + 0.5
        if x1 < frame.x0 or x0 > frame.x1:
            continue
        ax.axvspan(x0, x1, color=DOXORUBICIN_COLOUR, alpha=0.25, linewidth=0, zorder=0.3)
        shown = True
    return shown


def _top_label(
    ax: Axes, x: float, text: str, *, dx: float, dy: float, fontsize: float, colour: str
) -> None:
    # x in data, y at the top edge of the plot area, then offset in points: the
    # rows stay the same distance apart whatever the chart's height.
    _annotate(
        ax,
        text,
        xy=(x, 1),
        xycoords=ax.get_xaxis_transform(),
        xytext=(dx, dy),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=fontsize,
        color=colour,
        bbox=_TEXT_BACKGROUND,
        zorder=6,
    )


def _annotate(ax: Axes, text: str, **kwargs: Any) -> None:
    """Every label of the chart is drawn here, never as mathtext: a "$" in a regimen
    or an imaging note from the record stays a "$" (and "$$" cannot break the chart)."""
    ax.annotate(text, parse_math=False, **kwargs)


def _draw_cutoff(ax: Axes, frame: Frame, cutoff: int | None, cancer_type: str) -> None:
    if cutoff is None:
        return
    # The unfavourable region includes the cut-off itself (rate >= cut-off).
    ax.axhspan(cutoff, frame.y_top, color=UNFAVOURABLE_COLOUR, alpha=0.07, lw=0, zorder=0.5)
    ax.axhline(cutoff, color=CUTOFF_COLOUR, linestyle=(0, (5, 3)), linewidth=1.1, zorder=2)
    # Outside the right edge, where data never is.
    _annotate(
        ax,
        _cutoff_label(cutoff, cancer_type),
        xy=(1, cutoff),
        xycoords=ax.get_yaxis_transform(),
        xytext=(4, 0),
        textcoords="offset points",
        ha="left",
        va="center",
        fontsize=8,
        color=CUTOFF_COLOUR,
        annotation_clip=False,
    )


def _cutoff_label(cutoff: int, cancer_type: str) -> str:
    """The cut-off line's label: "Cut-off 5" over "(breast)"."""
    return f"Cut-off {cutoff}\n({cancer_type})" if cancer_type else f"Cut-off {cutoff}"


def _draw_today(ax: Axes, today: date) -> None:
    x = day_num(today)
    ax.axvline(x, color="#888888", linestyle=(0, (2, 2)), linewidth=0.8, zorder=1)
    _annotate(
        ax,
        "today",
        xy=(x, 0),
        xycoords=ax.get_xaxis_transform(),
        xytext=(2, 3),
        textcoords="offset points",
        rotation=90,
        ha="left",
        va="bottom",
        fontsize=7,
        color="#666666",
    )


def _draw_cycles(ax: Axes, frame: Frame, cycles: Sequence[rules.CycleIn]) -> None:
    """Day 1 of each cycle: a tick inside the top edge, "C1" just above it."""
    shown = sorted(
        (day_num(cycle.given_date or cycle.scheduled_date), cycle.number)
        for cycle in cycles
        if cycle.status != rules.CycleStatus.CANCELLED
    )
    shown = [(x, number) for x, number in shown if frame.x0 <= x <= frame.x1]
    if not shown:
        return
    top = ax.get_xaxis_transform()
    tick_xs, tick_ys = _verticals([x for x, _ in shown], 0.965, 1)
    ax.plot(tick_xs, tick_ys, transform=top, color="#555555", lw=0.9)
    # Dense schedules (weekly regimens) keep every tick but thin the labels,
    # left to right, so that no two touch.
    last_right = -math.inf
    for x, number in shown:
        text = f"C{number}"
        half = text_width_pt(text, 6.5) / 2
        centre = frame.x_pt(x)
        if centre - half < last_right + 3:
            continue
        last_right = centre + half
        ax.text(
            x,
            1.012,
            text,
            transform=top,
            ha="center",
            va="bottom",
            fontsize=6.5,
            color=TEXT_COLOUR,
            clip_on=False,
        )


def _draw_imaging(ax: Axes, frame: Frame, *, first_row: int) -> list[Box]:
    """Imaging as dotted lines labelled "CT: PR", in rows so that labels never overlap
    (the rows are the frame's: its headroom is made for them)."""
    if not frame.imaging:
        return []
    # One line per date: two scans on one day would double the dots into a solid line.
    line_xs, line_ys = _verticals(sorted({label.x for label in frame.imaging}), 0, 1)
    ax.plot(
        line_xs, line_ys, transform=ax.get_xaxis_transform(), color=IMAGING_COLOUR, ls=":", lw=1
    )
    boxes = []
    for label in frame.imaging:
        dy = -ROW_OFFSET_PT - ROW_HEIGHT_PT * (label.row + first_row)
        _top_label(ax, label.x, label.text, dx=2, dy=dy, fontsize=IMAGING_FONT_PT,
                   colour=IMAGING_COLOUR)  # fmt: skip
        top = frame.height_pt + dy
        boxes.append(Box(label.left, top - ROW_HEIGHT_PT, label.right, top))
    return boxes


POINT_GID = "ctc-point-{}"


def _draw_points(
    ax: Axes, frame: Frame, plotted: Sequence[rules.DrawAssessment], *, one_per_point: bool
) -> None:
    """The markers: with `one_per_point`, one artist per point with the id
    POINT_GID.format(index in `plotted`), else one artist per marker style.

    In the SVG each point is then a group of its own, which chart_svg gives a
    tooltip (<title>) and makes reachable with the keyboard. A PNG or the PDF has
    no tooltips: one artist per style draws the same markers, and a thousand
    points cost a few artists, not a thousand.
    """
    evaluable = [a for a in plotted if a.evaluable]
    if evaluable:
        xs = [day_num(a.draw.drawn_on) for a in evaluable]
        # Only evaluable samples are joined: a missing result is never read as a value.
        ax.plot(xs, [rate_of(a) for a in evaluable], color=TRACE_COLOUR, linewidth=0.9, zorder=2.5)
        _draw_intervals(ax, evaluable)
    by_style: dict[str, tuple[dict[str, Any], list[float], list[float]]] = {}
    for index, a in enumerate(plotted):
        x = day_num(a.draw.drawn_on)
        if a.evaluable:
            style = LOWER_BOUND if a.censored else STYLES[a.category]
            # A non-standard volume gives an indicative category only: an open marker.
            props = _marker_props(style, hollow=_non_standard(a))
            y = rate_of(a)
        else:
            props = _marker_props(NOT_EVALUABLE, edge=1.5)
            y = frame.y_missing
        if one_per_point:
            ax.plot([x], [y], **props, zorder=4, gid=POINT_GID.format(index))
            continue
        key = repr(sorted(props.items(), key=lambda item: item[0]))
        group = by_style.setdefault(key, (props, [], []))
        group[1].append(x)
        group[2].append(y)
    for props, xs, ys in by_style.values():
        ax.plot(xs, ys, **props, zorder=4)


def _marker_props(style: MarkerStyle, *, hollow: bool = False, edge: float = 0.6) -> dict[str, Any]:
    return {
        "linestyle": "none",
        "marker": _MARKER_PATHS.get(style.marker, style.marker),
        "markersize": math.sqrt(style.size),
        "color": style.colour,
        "markerfacecolor": "white" if hollow else style.colour,
        "markeredgewidth": 1.4 if hollow or style.marker == LOWER_BOUND.marker else edge,
    }


def _verticals(
    xs: Sequence[float], lows: Sequence[float] | float, highs: Sequence[float] | float
) -> tuple[list[float], list[float]]:
    """Vertical segments as one polyline broken by NaNs: one artist for all of them."""
    count = len(xs)
    lows = [lows] * count if isinstance(lows, float | int) else list(lows)
    highs = [highs] * count if isinstance(highs, float | int) else list(highs)
    seg_xs = [v for x in xs for v in (x, x, math.nan)]
    seg_ys = [v for low, high in zip(lows, highs, strict=True) for v in (low, high, math.nan)]
    return seg_xs, seg_ys


def _draw_intervals(ax: Axes, evaluable: Sequence[rules.DrawAssessment]) -> None:
    """95% intervals as capped whiskers in the colour of their category.

    A censored count has only a lower limit: its whisker runs from that limit up
    to the bound, with a cap at the limit only.
    """
    by_colour: dict[str, list[tuple[float, float, float, bool]]] = {}
    for a in evaluable:
        low, high = a.ci95 if a.ci95 is not None else (rate_of(a), rate_of(a))
        x = day_num(a.draw.drawn_on)
        whisker = (x, low, rate_of(a) if high is None else high, high is not None)
        by_colour.setdefault(STYLES[a.category].colour, []).append(whisker)
    for colour, whiskers in by_colour.items():
        xs, lows, highs, capped = zip(*whiskers, strict=True)
        seg_xs, seg_ys = _verticals(xs, lows, highs)
        ax.plot(seg_xs, seg_ys, color=colour, linewidth=1.0, alpha=0.6, zorder=3)
        tops = [(x, high) for x, high, cap in zip(xs, highs, capped, strict=True) if cap]
        ax.plot(
            [*xs, *(x for x, _ in tops)],
            [*lows, *(high for _, high in tops)],
            linestyle="none",
            marker="_",
            markersize=4.5,
            color=colour,
            markeredgewidth=1.0,
            alpha=0.6,
            zorder=3,
        )


def _non_standard(assessment: rules.DrawAssessment) -> bool:
    return any(flag.code == rules.FlagCode.NON_STANDARD_VOLUME for flag in assessment.flags)


# --- labels beside the points ---------------------------------------------


def _flag_codes(evaluable: Sequence[rules.DrawAssessment]) -> list[list[str]]:
    """The labelled flag codes of each evaluable sample, in _FLAG_LABELS order.

    "persist." is shown only at the start of a run of persistent samples: the
    red triangles that follow already show that the count stays unfavourable.
    """
    result = []
    previous_persistent = False
    for a in evaluable:
        present = {flag.code for flag in a.flags}
        codes = [code for code in _FLAG_LABELS if code in present]
        persistent = rules.FlagCode.PERSISTENT_UNFAVOURABLE in present
        if previous_persistent:
            codes = [code for code in codes if code != rules.FlagCode.PERSISTENT_UNFAVOURABLE]
        previous_persistent = persistent
        result.append(codes)
    return result


def _flag_words(codes: list[str], *, acknowledged: bool) -> list[str]:
    """The flags' short words, the first after a tick when they are acknowledged."""
    words = [_FLAG_LABELS[code][0] for code in codes]
    if acknowledged and words:
        words[0] = f"{ACKNOWLEDGED_MARK} {words[0]}"
    return words


def _label_parts(
    a: rules.DrawAssessment, codes: list[str], *, acknowledged: bool
) -> tuple[list[str], str]:
    """What is said beside a point: flag words (after a tick when acknowledged), the
    bound ("> 1000") or the chance ("53% ≥ cut-off"); and, apart, how many tubes it
    pools ("2 tubes"), said when there is room."""
    parts = _flag_words(codes, acknowledged=acknowledged)
    if a.censored:
        parts.append(wording.short_rate(rate_of(a), censored=True))
    chance = chance_of(a)
    if chance is not None:
        parts.append(chance_percent(chance) + CHANCE_SUFFIX)
    tubes = tubes_of(a)
    return parts, f"{tubes} tubes" if tubes > 1 else ""


def _label_rank(a: rules.DrawAssessment, codes: list[str]) -> int:
    """Which labels are placed first: flags by importance, then bounds, chances, tubes."""
    if codes:
        return list(_FLAG_LABELS).index(codes[0])
    if a.censored:
        return len(_FLAG_LABELS)
    return len(_FLAG_LABELS) + (1 if chance_of(a) is not None else 2)


def _whisker_box(frame: Frame, a: rules.DrawAssessment) -> Box:
    """Where a point's interval whisker is: no label may cover it."""
    low, high = a.ci95 if a.ci95 is not None else (rate_of(a), rate_of(a))
    x = frame.x_pt(day_num(a.draw.drawn_on))
    top = frame.y_pt(rate_of(a) if high is None else high)
    return Box(x - 2.5, frame.y_pt(low) - 1, x + 2.5, top + 1)


def _cutoff_boxes(frame: Frame, cutoff: int | None) -> list[Box]:
    """The cut-off line, across the plot: no label may sit on it."""
    if cutoff is None:
        return []
    y = frame.y_pt(cutoff)
    return [Box(0, y - 1.5, frame.width_pt, y + 1.5)]


def _draw_point_labels(
    ax: Axes,
    frame: Frame,
    plotted: Sequence[rules.DrawAssessment],
    taken: list[Box],
    cutoff: int | None,
    acknowledged: frozenset[int],
) -> set[str]:
    """Short labels beside the points, placed so that none overlaps another.

    The most important are placed first; "2 tubes" is dropped before anything
    else when there is no room, and a label with no free slot is left off (the
    sample's flags are still listed in the table beside the chart). Returns
    what was shown (flag codes, and "chance"), for the legend's key.
    """
    evaluable = [a for a in plotted if a.evaluable]

    def done(a: rules.DrawAssessment) -> bool:
        return point_key(a) in acknowledged

    labelled = [
        (_label_rank(a, codes), a, codes, *_label_parts(a, codes, acknowledged=done(a)))
        for codes, a in zip(_flag_codes(evaluable), evaluable, strict=True)
    ]
    labelled = [item for item in labelled if item[3] or item[4]]
    labelled.sort(key=lambda item: item[0])
    occupied = Occupied(
        [
            *taken,
            *(marker_box(frame, a) for a in evaluable),
            *(_whisker_box(frame, a) for a in evaluable),
            *_cutoff_boxes(frame, cutoff),
        ]
    )
    shown: set[str] = set()
    for _rank, a, codes, parts, tubes in labelled:
        x, y = day_num(a.draw.drawn_on), rate_of(a)
        tries = [", ".join([*parts, tubes] if tubes else parts)]
        if tubes and parts:
            tries.append(", ".join(parts))
        # Crowded: the flag's words alone, which matter most (the tooltip has the rest).
        flag_words = _flag_words(codes, acknowledged=done(a))
        if flag_words and flag_words != parts:
            tries.append(", ".join(flag_words))
        for text in tries:
            slot = free_slot(frame, x, y, text, occupied)
            if slot is not None:
                break
        if slot is None:
            continue
        dx, dy, ha, va = slot
        _annotate(
            ax,
            text,
            xy=(x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=7.5,
            color=STYLES[a.category].colour,
            fontweight="bold",
            zorder=6,
            bbox=_TEXT_BACKGROUND,
        )
        shown.update(codes)
        if text.startswith(ACKNOWLEDGED_MARK):
            shown.add("acknowledged")
        if CHANCE_SUFFIX in text:
            shown.add("chance")
    return shown


# --- notes and legend -----------------------------------------------------


def _draw_notes(
    ax: Axes, frame: Frame, data: ChartData, plotted: Sequence[rules.DrawAssessment]
) -> None:
    if not plotted:
        # Just under where the highest value would be: under the labels along the top,
        # clear of the cut-off line.
        ax.text(
            0.5,
            frame.y_pt(frame.data_top) / frame.height_pt - 0.08,
            NO_DRAWS_TEXT,
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=11,
            color="#555555",
            zorder=6,
            bbox=_TEXT_BACKGROUND,
        )
    if data.cutoff is None:
        _annotate(
            ax,
            _no_cutoff_note(data.cancer_type),
            xy=(0.5, 1),
            xycoords="axes fraction",
            xytext=(0, -ROW_OFFSET_PT),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8.5,
            color=TEXT_COLOUR,
            zorder=6,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#bbbbbb"},
        )


def _no_cutoff_note(cancer_type: str) -> str:
    named = cancer_type or "this cancer type"
    return f"No cut-off for {named}: counts cannot be classified"


def _draw_legend(
    fig: Figure,
    data: ChartData,
    plotted: Sequence[rules.DrawAssessment],
    shown: set[str],
    *,
    doxorubicin: bool,
    width_pt: float,
) -> None:
    """Below the plot, where it never hides data; the key to the labels' words is its title."""
    entries = _legend_entries(data, plotted, doxorubicin=doxorubicin)
    # One row when it fits, else two balanced rows.
    ncols = len(entries) if len(entries) <= 6 else math.ceil(len(entries) / 2)
    handles, labels = zip(*_row_major(entries, ncols), strict=True)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=ncols,
        fontsize=7.5,
        frameon=False,
        handlelength=1.8,
        columnspacing=1.6,
        title=_legend_title(shown, width_pt),
        title_fontproperties={"size": _LEGEND_PT},
        labelcolor=TEXT_COLOUR,
    )


def _legend_title(shown: set[str], width_pt: float) -> str | None:
    """The key to the words beside the points (the flags shown, then the chance),
    in lines that fit the figure's width, broken only between keys."""
    keys = [
        f"{words} = {meaning}" for code, (words, meaning) in _FLAG_LABELS.items() if code in shown
    ]
    parts = [f"Flags:   {keys[0]}", *keys[1:]] if keys else []
    if "acknowledged" in shown:
        parts.append(f"{ACKNOWLEDGED_MARK} = flags acknowledged")
    if "chance" in shown:
        parts.append(CHANCE_KEY)
    room = width_pt - 2 * _LEGEND_SIDE_PT
    lines: list[str] = []
    for part in parts:
        joined = f"{lines[-1]}   {part}" if lines else part
        if lines and text_width_pt(joined, _LEGEND_PT) <= room:
            lines[-1] = joined
        else:
            lines.append(part)
    return "\n".join(lines) or None


def _legend_entries(
    data: ChartData, plotted: Sequence[rules.DrawAssessment], *, doxorubicin: bool
) -> list[tuple[Artist, str]]:
    categories = [rules.Category.FAVOURABLE, rules.Category.UNFAVOURABLE] if data.cutoff else [None]
    entries: list[tuple[Artist, str]] = [
        (_marker_handle(STYLES[category]), STYLES[category].label) for category in categories
    ]
    if any(a.censored for a in plotted):
        # Smaller than on the plot, so that it keeps to its row of the legend.
        handle = _marker_handle(replace(LOWER_BOUND, size=LOWER_BOUND.size / 2))
        entries.append((handle, LOWER_BOUND.label))
    entries.append((_marker_handle(NOT_EVALUABLE, edge=1.5), NOT_EVALUABLE.label))
    interval = Line2D([], [], color="#777777", marker="_", markersize=6, lw=1.0)
    entries.append((interval, "95% interval"))
    if data.cutoff is not None:
        dashed = Line2D([], [], color=CUTOFF_COLOUR, linestyle=(0, (5, 3)), lw=1.1)
        entries.append((dashed, "cut-off"))
        shade = Patch(facecolor=UNFAVOURABLE_COLOUR, alpha=0.12, lw=0)
        entries.append((shade, "unfavourable range"))
    if any(_non_standard(a) for a in plotted if a.evaluable):
        hollow = _marker_handle(MarkerStyle("o", TEXT_COLOUR, "", 36), hollow=True)
        entries.append((hollow, "open: non-standard volume"))
    if _line_bands(data):
        strip = Patch(facecolor=BAND_TINTS[0], lw=0)
        entries.append((strip, "therapy line (strip at the top)"))
    if doxorubicin:
        band = Patch(facecolor=DOXORUBICIN_COLOUR, alpha=0.25, lw=0)
        entries.append((band, DOXORUBICIN_LABEL))
    if data.imaging:
        entries.append((Line2D([], [], color=IMAGING_COLOUR, linestyle=":", lw=1.2), "imaging"))
    return entries


def _row_major(entries: list[tuple[Artist, str]], ncols: int) -> list[tuple[Artist, str]]:
    """Reorder so that the legend, which fills columns first, reads row by row."""
    rows = math.ceil(len(entries) / ncols)
    blank = (Line2D([], [], linestyle="none"), "")
    grid = entries + [blank] * (rows * ncols - len(entries))
    return [grid[row * ncols + col] for col in range(ncols) for row in range(rows)]


def _marker_handle(style: MarkerStyle, *, hollow: bool = False, edge: float = 0.6) -> Line2D:
    return Line2D([], [], **_marker_props(style, hollow=hollow, edge=edge))


# --- encoders -------------------------------------------------------------


def trend_svg(data: ChartData, *, identity: ChartIdentity | None = None) -> bytes:
    """The chart as an SVG document, each point with its tooltip (see chart_svg)."""
    return with_point_titles(
        _svg_bytes(trend_figure(data, identity=identity, point_ids=True)), point_tooltips(data)
    )


def trend_svg_inline(data: ChartData, *, label: str) -> str:
    """The chart as markup for the patient page: tooltips that show, points the keyboard
    reaches, no inline CSS. The page around it says whose chart it is."""
    svg = with_point_titles(
        _svg_bytes(trend_figure(data, point_ids=True), bare=True), point_tooltips(data)
    )
    return inline(svg, label=label)


def trend_png(data: ChartData, *, dpi: int = 110, identity: ChartIdentity | None = None) -> bytes:
    return _png_bytes(trend_figure(data, identity=identity), dpi=dpi)


def _svg_bytes(fig: Figure, *, transparent: bool = False, bare: bool = False) -> bytes:
    """SVG with text kept as text (searchable, crisp) and no date: same data, same bytes.

    `bare` drops the XML prolog, DOCTYPE and metadata block, for SVG that is
    inlined in HTML many times over (still a valid SVG document on its own).
    """
    buffer = io.BytesIO()
    metadata = _BARE_SVG_METADATA if bare else {"Date": None}
    with RC_LOCK, matplotlib.rc_context(_SVG_RC):
        fig.savefig(buffer, format="svg", metadata=metadata, transparent=transparent)
    svg = buffer.getvalue()
    return svg[svg.index(b"<svg") :] if bare else svg


_BARE_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _png_bytes(fig: Figure, *, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


# --- the cache key --------------------------------------------------------

# Bump when the drawing code changes, so no server serves a chart drawn the old way.
# 2: version 2 of the rules (one point per sample, lower bounds, the chance, the
# doxorubicin windows). 3: tooltips, the identity line, acknowledged points, the
# y axis's scale named. 4: the headroom above the data is what the labels along the
# top need, in points (low counts fill the plot).
CHART_DESIGN = 4


def cache_key(
    *,
    patient_id: int,
    data_version: int,
    acknowledged: int,
    today: date,
    cutoffs: Mapping[str, int],
    settings: rules.Settings,
    time_zone: str,
    fmt: str,
) -> str:
    """The cache key of a patient's chart: changes whenever what it shows changes.

    The patient's data version (bumped by every write that changes the chart),
    the latest acknowledgement's id (an acknowledged point says so),
    today's date (the x axis ends today), the cut-offs, the settings the rules
    read (the clarity threshold and the replicate variation change the flags
    and their labels), the clinic's time zone (it gives each draw its local
    date), the format ("svg", "png") and the chart design.
    """
    cut = ",".join(f"{k}={v}" for k, v in sorted(cutoffs.items()))
    read = ",".join(f"{f.name}={getattr(settings, f.name)!r}" for f in fields(settings))
    parts = [CHART_DESIGN, patient_id, data_version, acknowledged, today, cut, read, time_zone, fmt]
    return "chart:" + ":".join(str(p) for p in parts)
