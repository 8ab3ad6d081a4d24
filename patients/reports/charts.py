"""Charts as image bytes: a patient's CTC trend and a worklist sparkline.

Takes plain data (the frozen dataclasses of patients.rules and the two below)
and knows nothing about requests, querysets or the database. Uses matplotlib's
Figure directly, never pyplot: pyplot keeps global state that leaks memory and
is not safe across threads in a web server. `trend_figure` builds the figure
and the encoders only turn it into bytes, so the PDF report can reuse it.

Every category shown comes from the assessments made by patients.rules, so the
chart and the table cannot disagree. The chart shows counts, intervals and the
rules' flags; it never draws a conclusion about the disease or the treatment.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.scale import SymmetricalLogTransform
from matplotlib.ticker import NullLocator

from patients import rules, wording

# Colour-blind-safe ends of ColorBrewer RdBu/PRGn, each >= 4.5:1 on white. The
# marker shape differs as well, so a category never rests on colour alone.
UNFAVOURABLE_COLOUR = "#b2182b"
FAVOURABLE_COLOUR = "#1a7837"
NOT_EVALUABLE_COLOUR = "#555555"
UNCLASSIFIED_COLOUR = "#2166ac"
IMAGING_COLOUR = "#5e3c99"
TEXT_COLOUR = "#333333"
TRACE_COLOUR = "#8c8c8c"
CUTOFF_COLOUR = "#444444"
BAND_TINTS = ("#eeeeee", "#f7f7f7")  # neutral, so the red shading stays red

Y_LABEL = "CTCs per 7.5 mL"
NO_DRAWS_TEXT = "No CTC draws recorded yet"

# Symmetric log: linear from 0 to 10 (where the cut-offs 3 and 5 are), then
# logarithmic, so that 0 and 20,000 both read well. The linear part gets the
# height of 1.5 decades because that is where classification happens.
LINTHRESH = 10.0
LINSCALE = 1.5
_SYMLOG = SymmetricalLogTransform(10, LINTHRESH, LINSCALE)

# Vertical plan of the plot area, as fractions of its height: zero a little
# above the bottom (not-evaluable marks sit below it), the highest value or
# interval at DATA_TOP, and the rows of regimen and imaging labels above it.
ZERO_AT = 0.10
DATA_TOP = 0.68
MIN_DATA_TOP = 20.0  # the region above a cut-off of 5 always shows

# Label positions below the top edge of the plot area, in points.
_REGIMEN_OFFSET_PT = 7
_ROW_OFFSET_PT = 22
_ROW_HEIGHT_PT = 11

# The final axes size is only known after layout; these estimates of the room
# taken by tick labels, the legend and margin labels keep labels apart (checked
# against the rendered samples in docs/chart-samples).
_MARGIN_W_IN = 1.45
_MARGIN_H_IN = 1.4
_CHAR_WIDTH_EM = 0.62  # average DejaVu Sans glyph width, slightly generous

# rc_context changes process-wide settings: one encoder at a time holds them.
RC_LOCK = threading.Lock()
# A light backing so labels stay readable over lines and bands.
_TEXT_BACKGROUND = {
    "boxstyle": "square,pad=0.1",
    "facecolor": "white",
    "edgecolor": "none",
    "alpha": 0.8,
}
_SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "ctctrack"}


@dataclass(frozen=True)
class ImagingPoint:
    performed_on: date
    modality: str  # display label, e.g. "CT", "PET-CT", "Bone scan"
    response: str  # RECIST 1.1 code: CR, PR, SD, PD, NE


@dataclass(frozen=True)
class ChartData:
    cancer_type: str
    cutoff: int | None  # None: the cancer type has no cut-off and cannot be classified
    assessments: Sequence[rules.DrawAssessment]  # oldest first, from rules.assess_draws
    lines: Sequence[rules.LineIn]
    cycles: Sequence[rules.CycleIn]  # all cycles of all lines
    imaging: Sequence[ImagingPoint]
    today: date  # the end of the x range: charts.py never reads the clock
    # LineIn carries no end date; a line that has one (line id -> date) ends its band there.
    line_end_dates: Mapping[int, date] = field(default_factory=dict)


@dataclass(frozen=True)
class _Style:
    marker: str
    colour: str
    label: str
    size: float  # marker area in pt^2 (markersize is its square root)


_STYLES: dict[rules.Category | None, _Style] = {
    rules.Category.FAVOURABLE: _Style("o", FAVOURABLE_COLOUR, "favourable", 36),
    rules.Category.UNFAVOURABLE: _Style("^", UNFAVOURABLE_COLOUR, "unfavourable", 48),
    None: _Style("D", UNCLASSIFIED_COLOUR, "count (not classified)", 26),
}
_NOT_EVALUABLE = _Style("x", NOT_EVALUABLE_COLOUR, "not evaluable", 36)

# Short words beside a flagged marker, most important first, with their key.
# They name what the rules found and nothing more.
_FLAG_LABELS: dict[str, tuple[str, str]] = {
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: ("↑ conv.", "converted to unfavourable"),
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: ("↓ conv.", "converted to favourable"),
    rules.FlagCode.RISE_BEYOND_NOISE: ("rise", "rise beyond counting noise"),
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: ("persist.", "still unfavourable"),
}


# --- geometry -------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    left: float
    bottom: float
    right: float
    top: float

    def overlaps(self, other: _Box) -> bool:
        return not (
            self.right <= other.left
            or other.right <= self.left
            or self.top <= other.bottom
            or other.top <= self.bottom
        )


class _Occupied:
    """Boxes already taken, bucketed by x so that a check looks only at neighbours.

    A long series has hundreds of markers: comparing each label with every box
    would be quadratic.
    """

    _COLUMN_PT = 48.0

    def __init__(self, boxes: Iterable[_Box] = ()) -> None:
        self._columns: dict[int, list[_Box]] = {}
        for box in boxes:
            self.add(box)

    def _keys(self, box: _Box) -> range:
        return range(
            math.floor(box.left / self._COLUMN_PT), math.floor(box.right / self._COLUMN_PT) + 1
        )

    def add(self, box: _Box) -> None:
        for key in self._keys(box):
            self._columns.setdefault(key, []).append(box)

    def free(self, box: _Box) -> bool:
        return not any(
            box.overlaps(other) for key in self._keys(box) for other in self._columns.get(key, ())
        )


@dataclass(frozen=True)
class _Frame:
    """Data limits and the estimated plot-area size in points, to keep labels apart."""

    x0: float
    x1: float
    y_bottom: float
    y_top: float
    y_missing: float  # where not-evaluable draws are marked, below zero
    data_top: float  # the highest value or interval end, placed at DATA_TOP
    width_pt: float
    height_pt: float

    def x_pt(self, x: float) -> float:
        return (x - self.x0) / (self.x1 - self.x0) * self.width_pt

    def holds(self, box: _Box) -> bool:
        return (
            box.left >= 0
            and box.bottom >= 0
            and box.right <= self.width_pt
            and box.top <= self.height_pt
        )

    def y_pt(self, y: float) -> float:
        low, high = _symlog(self.y_bottom), _symlog(self.y_top)
        return (_symlog(y) - low) / (high - low) * self.height_pt


def _symlog(y: float) -> float:
    return float(_SYMLOG.transform(np.array([[y]]))[0, 0])


# _symlog in scalar arithmetic, for the sparkline: a worklist page transforms every
# point of every row, and matplotlib's transform costs an array round trip per
# number. The same operations in the same order as its SymmetricalLogTransform,
# with numpy's log (math.log differs from it in the last bit now and then), so the
# very same float: tests compare the two.
_LINSCALE_ADJ = LINSCALE / (1.0 - 1.0 / 10)
_LOG_BASE = float(np.log(10))
_LOG_LINTHRESH = float(np.log(LINTHRESH))


def _symlog_scalar(y: float) -> float:
    if abs(y) <= LINTHRESH:
        return y * _LINSCALE_ADJ
    sign = 1.0 if y > 0 else -1.0
    log_y = float(np.log(abs(y)))
    return sign * LINTHRESH * (_LINSCALE_ADJ - _LOG_LINTHRESH / _LOG_BASE + log_y / _LOG_BASE)


def _symlog_inverse(t: float) -> float:
    return float(_SYMLOG.inverted().transform(np.array([[t]]))[0, 0])


def _text_width_pt(text: str, fontsize: float) -> float:
    return len(text) * fontsize * _CHAR_WIDTH_EM


def _frame(data: ChartData, width_in: float, height_in: float) -> _Frame:
    x0, x1 = _x_range(data)
    rates = [a.rate_per_7_5_ml for a in data.assessments if a.rate_per_7_5_ml is not None]
    highs = [a.ci95[1] for a in data.assessments if a.ci95 is not None]
    cutoff_room = 3 * data.cutoff if data.cutoff is not None else 0
    data_top = max([MIN_DATA_TOP, cutoff_room, *rates, *highs])
    # Place zero at ZERO_AT and data_top at DATA_TOP of the height, in symlog units.
    span = _symlog(data_top) / (DATA_TOP - ZERO_AT)
    return _Frame(
        x0=x0,
        x1=x1,
        y_bottom=_symlog_inverse(-ZERO_AT * span),
        y_top=_symlog_inverse(_symlog(data_top) + (1 - DATA_TOP) * span),
        y_missing=_symlog_inverse(-ZERO_AT * span * 0.55),
        data_top=data_top,
        width_pt=max(width_in - _MARGIN_W_IN, 1.0) * 72,
        height_pt=max(height_in - _MARGIN_H_IN, 1.0) * 72,
    )


def _x_range(data: ChartData) -> tuple[float, float]:
    """From the first thing worth showing to today, padded a little on each side."""
    events = [a.draw.drawn_on for a in _plotted(data.assessments)]
    events += [line.start_date for line in data.lines]
    events += [point.performed_on for point in data.imaging]
    start = min((day for day in events if day <= data.today), default=data.today)
    start = min(start, data.today - timedelta(days=42))  # never a uselessly narrow window
    pad = max((data.today - start).days * 0.025, 3.0)
    return float(date2num(start)) - pad, float(date2num(data.today)) + pad


def _plotted(assessments: Sequence[rules.DrawAssessment]) -> list[rules.DrawAssessment]:
    # Pending and cancelled draws have no result to show; rejected and failed
    # ones are marked as "not evaluable" so that a missing result is visible.
    return [a for a in assessments if a.evaluable or a.draw.status in rules.NOT_EVALUABLE_STATUSES]


# --- the trend chart ------------------------------------------------------


def trend_figure(data: ChartData, *, width_in: float = 9.0, height_in: float = 4.2) -> Figure:
    """The CTC trend of one patient as a matplotlib Figure, not yet rendered."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    ax = fig.add_subplot()
    frame = _frame(data, width_in, height_in)
    plotted = _plotted(data.assessments)
    _style_axes(ax, frame, data.cutoff)
    occupied = _draw_therapy_lines(ax, frame, data)
    _draw_cutoff(ax, frame, data.cutoff, data.cancer_type)
    _draw_today(ax, data.today)
    _draw_cycles(ax, frame, data.cycles)
    note_rows = 0 if data.cutoff is not None else 2  # the no-cut-off note's box takes rows 0-1
    occupied += _draw_imaging(ax, frame, data.imaging, first_row=note_rows)
    _draw_draws(ax, frame, plotted)
    flag_codes = _draw_flag_labels(ax, frame, plotted, occupied)
    _draw_notes(ax, data, plotted)
    _draw_legend(fig, data, plotted, flag_codes)
    return fig


def _style_axes(ax: Axes, frame: _Frame, cutoff: int | None) -> None:
    ax.set_yscale("symlog", linthresh=LINTHRESH, linscale=LINSCALE)
    ax.set_ylim(frame.y_bottom, frame.y_top)
    ax.set_xlim(frame.x0, frame.x1)
    ticks = _y_ticks(frame, cutoff)
    ax.set_yticks(ticks, [f"{tick:,}" for tick in ticks])
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylabel(Y_LABEL, fontsize=9, color=TEXT_COLOUR)
    ax.xaxis_date()
    locator = AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    # The year once, as the offset or at January, never "2025-May".
    years = ["", "%Y", "%Y", "%Y", "%Y", "%Y"]
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, offset_formats=years))
    ax.tick_params(labelsize=8, colors=TEXT_COLOUR)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#777777")


def _y_ticks(frame: _Frame, cutoff: int | None) -> list[int]:
    """Plain-number ticks (0, 1, 2, 5, 10, 20 ...), each only where it has room.

    Candidates are tried in order of importance (0, powers of ten, the cut-off,
    fives, twos, one), so a tall range drops 2 and 20 before 10 or 100.
    """
    top_power = max(1, math.ceil(math.log10(frame.data_top)))
    powers = [10**k for k in range(1, top_power + 1)]
    candidates = [0, *powers, *([cutoff] if cutoff else [])]
    candidates += [5 * p // 10 for p in powers] + [2 * p // 10 for p in powers] + [1]
    candidates += [5 * p for p in powers] + [2 * p for p in powers]
    # No ticks in the empty headroom kept for labels: stop at the first
    # 1-2-5 value at or above the highest value shown.
    limit = min(c for c in candidates if c >= frame.data_top)
    chosen: list[int] = []
    for tick in candidates:
        if tick > limit or tick in chosen:
            continue
        y = frame.y_pt(tick)
        if all(abs(y - frame.y_pt(other)) >= 12 for other in chosen):
            chosen.append(tick)
    return sorted(chosen)


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


def _draw_therapy_lines(ax: Axes, frame: _Frame, data: ChartData) -> list[_Box]:
    """Alternating tinted bands named "L1 Paclitaxel"; returns where the names are."""
    boxes = []
    for index, (line, start, end) in enumerate(_line_bands(data)):
        x0, x1 = float(date2num(start)), float(date2num(end))
        ax.axvspan(x0, x1, color=BAND_TINTS[index % 2], linewidth=0, zorder=0.2)
        left = frame.x_pt(x0) + 3
        name = _fit(f"L{line.line_number} {line.regimen}".strip(), frame.x_pt(x1) - left - 3, 8)
        if not name:
            continue
        _top_label(ax, x0, name, dx=3, dy=-_REGIMEN_OFFSET_PT, fontsize=8, colour=TEXT_COLOUR)
        top = frame.height_pt - _REGIMEN_OFFSET_PT
        boxes.append(_Box(left, top - 11, left + _text_width_pt(name, 8), top))
    return boxes


def _fit(text: str, room_pt: float, fontsize: float) -> str:
    """The text, cut with an ellipsis to fit its band; "" when not even two letters fit."""
    if _text_width_pt(text, fontsize) <= room_pt:
        return text
    chars = int(room_pt / (fontsize * _CHAR_WIDTH_EM)) - 1
    return text[:chars].rstrip() + "…" if chars >= 2 else ""


def _top_label(
    ax: Axes, x: float, text: str, *, dx: float, dy: float, fontsize: float, colour: str
) -> None:
    # x in data, y at the top edge of the plot area, then offset in points: the
    # rows stay the same distance apart whatever the chart's height.
    ax.annotate(
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


def _draw_cutoff(ax: Axes, frame: _Frame, cutoff: int | None, cancer_type: str) -> None:
    if cutoff is None:
        return
    # The unfavourable region includes the cut-off itself (rate >= cut-off).
    ax.axhspan(cutoff, frame.y_top, color=UNFAVOURABLE_COLOUR, alpha=0.07, lw=0, zorder=0.5)
    ax.axhline(cutoff, color=CUTOFF_COLOUR, linestyle=(0, (5, 3)), linewidth=1.1, zorder=2)
    # Outside the right edge, where data never is.
    ax.annotate(
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
    x = float(date2num(today))
    ax.axvline(x, color="#888888", linestyle=(0, (2, 2)), linewidth=0.8, zorder=1)
    ax.annotate(
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


def _draw_cycles(ax: Axes, frame: _Frame, cycles: Sequence[rules.CycleIn]) -> None:
    """Day 1 of each cycle: a tick inside the top edge, "C1" just above it."""
    shown = sorted(
        (float(date2num(cycle.given_date or cycle.scheduled_date)), cycle.number)
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
        half = _text_width_pt(text, 6.5) / 2
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


def _draw_imaging(
    ax: Axes, frame: _Frame, imaging: Sequence[ImagingPoint], *, first_row: int
) -> list[_Box]:
    """Imaging as dotted lines labelled "CT: PR", in rows so that labels never overlap."""
    points = sorted(
        (p for p in imaging if frame.x0 <= float(date2num(p.performed_on)) <= frame.x1),
        key=lambda p: (p.performed_on, p.modality),
    )
    if not points:
        return []
    xs = [float(date2num(p.performed_on)) for p in points]
    # One line per date: two scans on one day would double the dots into a solid line.
    line_xs, line_ys = _verticals(sorted(set(xs)), 0, 1)
    ax.plot(
        line_xs, line_ys, transform=ax.get_xaxis_transform(), color=IMAGING_COLOUR, ls=":", lw=1
    )
    row_ends: list[float] = []  # the right edge of the last label in each row
    boxes = []
    for x, point in zip(xs, points, strict=True):
        text = f"{point.modality}: {point.response}"
        left = frame.x_pt(x) + 2
        row = next((i for i, end in enumerate(row_ends) if left > end + 4), len(row_ends))
        row_ends[row : row + 1] = [left + _text_width_pt(text, 7.5)]
        dy = -_ROW_OFFSET_PT - _ROW_HEIGHT_PT * (row + first_row)
        _top_label(ax, x, text, dx=2, dy=dy, fontsize=7.5, colour=IMAGING_COLOUR)
        top = frame.height_pt + dy
        boxes.append(_Box(left, top - _ROW_HEIGHT_PT, row_ends[row], top))
    return boxes


def _draw_draws(ax: Axes, frame: _Frame, plotted: Sequence[rules.DrawAssessment]) -> None:
    # Line2D artists throughout: markers as lines without a line draw the same
    # as scatter or vlines collections at a fraction of their cost.
    evaluable = [a for a in plotted if a.evaluable]
    if evaluable:
        xs = [float(date2num(a.draw.drawn_on)) for a in evaluable]
        # Only evaluable draws are joined: a missing result is never read as a value.
        ax.plot(xs, [_rate(a) for a in evaluable], color=TRACE_COLOUR, linewidth=0.9, zorder=2.5)
        _draw_intervals(ax, evaluable)
        for style, hollow, group_xs, group_ys in _marker_groups(evaluable):
            # A non-standard volume gives an indicative category only: an open marker.
            ax.plot(group_xs, group_ys, **_marker_props(style, hollow=hollow), zorder=4)
    missing = [float(date2num(a.draw.drawn_on)) for a in plotted if not a.evaluable]
    if missing:
        props = _marker_props(_NOT_EVALUABLE, edge=1.5)
        ax.plot(missing, [frame.y_missing] * len(missing), **props, zorder=4)


def _marker_props(style: _Style, *, hollow: bool = False, edge: float = 0.6) -> dict[str, Any]:
    return {
        "linestyle": "none",
        "marker": style.marker,
        "markersize": math.sqrt(style.size),
        "color": style.colour,
        "markerfacecolor": "white" if hollow else style.colour,
        "markeredgewidth": 1.4 if hollow else edge,
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


def _rate(assessment: rules.DrawAssessment) -> float:
    assert assessment.rate_per_7_5_ml is not None  # only evaluable draws get here
    return assessment.rate_per_7_5_ml


def _draw_intervals(ax: Axes, evaluable: Sequence[rules.DrawAssessment]) -> None:
    """95% intervals as capped whiskers in the colour of their category."""
    by_colour: dict[str, list[tuple[float, float, float]]] = {}
    for a in evaluable:
        low, high = a.ci95 if a.ci95 is not None else (_rate(a), _rate(a))
        x = float(date2num(a.draw.drawn_on))
        by_colour.setdefault(_STYLES[a.category].colour, []).append((x, low, high))
    for colour, whiskers in by_colour.items():
        xs, lows, highs = zip(*whiskers, strict=True)
        seg_xs, seg_ys = _verticals(xs, lows, highs)
        ax.plot(seg_xs, seg_ys, color=colour, linewidth=1.0, alpha=0.6, zorder=3)
        ax.plot(
            [*xs, *xs],
            [*lows, *highs],
            linestyle="none",
            marker="_",
            markersize=4.5,
            color=colour,
            markeredgewidth=1.0,
            alpha=0.6,
            zorder=3,
        )


def _marker_groups(
    evaluable: Sequence[rules.DrawAssessment],
) -> list[tuple[_Style, bool, list[float], list[float]]]:
    """Draws grouped by (category, non-standard volume): one artist per group."""
    groups: dict[tuple[rules.Category | None, bool], tuple[list[float], list[float]]] = {}
    for a in evaluable:
        xs, ys = groups.setdefault((a.category, _non_standard(a)), ([], []))
        xs.append(float(date2num(a.draw.drawn_on)))
        ys.append(_rate(a))
    return [(_STYLES[cat], hollow, xs, ys) for (cat, hollow), (xs, ys) in groups.items()]


def _non_standard(assessment: rules.DrawAssessment) -> bool:
    return any(flag.code == rules.FlagCode.NON_STANDARD_VOLUME for flag in assessment.flags)


# --- flag labels ----------------------------------------------------------

# Where a flag label may go relative to its marker, tried in this order:
# (dx, dy) in points and the text alignment.
_LABEL_SLOTS = (
    (5, 6, "left", "bottom"),
    (5, -6, "left", "top"),
    (-5, 6, "right", "bottom"),
    (-5, -6, "right", "top"),
)


def _flag_codes(evaluable: Sequence[rules.DrawAssessment]) -> list[list[str]]:
    """The labelled flag codes of each evaluable draw, in _FLAG_LABELS order.

    "persist." is shown only at the start of a run of persistent draws: the
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


def _draw_flag_labels(
    ax: Axes, frame: _Frame, plotted: Sequence[rules.DrawAssessment], taken: list[_Box]
) -> list[str]:
    """Short labels beside flagged markers, placed so that none overlaps another.

    The most important flags are placed first; a label with no free slot is
    left off (the draw's flags are still listed in the table beside the chart).
    Returns the codes shown, for the legend's key.
    """
    evaluable = [a for a in plotted if a.evaluable]
    labelled = [(codes, a) for codes, a in zip(_flag_codes(evaluable), evaluable, strict=True)]
    labelled = [(codes, a) for codes, a in labelled if codes]
    labelled.sort(key=lambda item: list(_FLAG_LABELS).index(item[0][0]))
    occupied = _Occupied([*taken, *(_marker_box(frame, a) for a in evaluable)])
    shown: set[str] = set()
    for codes, a in labelled:
        text = ", ".join(_FLAG_LABELS[code][0] for code in codes)
        x, y = float(date2num(a.draw.drawn_on)), _rate(a)
        slot = _free_slot(frame, x, y, text, occupied)
        if slot is None:
            continue
        dx, dy, ha, va = slot
        colour = _STYLES[a.category].colour
        ax.annotate(
            text,
            xy=(x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=7.5,
            color=colour,
            fontweight="bold",
            zorder=6,
            bbox=_TEXT_BACKGROUND,
        )
        shown.update(codes)
    return [code for code in _FLAG_LABELS if code in shown]


def _marker_box(frame: _Frame, a: rules.DrawAssessment) -> _Box:
    x, y = frame.x_pt(float(date2num(a.draw.drawn_on))), frame.y_pt(_rate(a))
    return _Box(x - 4, y - 4, x + 4, y + 4)


def _free_slot(
    frame: _Frame, x: float, y: float, text: str, occupied: _Occupied
) -> tuple[float, float, str, str] | None:
    width, height = _text_width_pt(text, 7.5) + 2, 10.0
    x_pt, y_pt = frame.x_pt(x), frame.y_pt(y)
    for dx, dy, ha, va in _LABEL_SLOTS:
        left = x_pt + dx if ha == "left" else x_pt + dx - width
        bottom = y_pt + dy if va == "bottom" else y_pt + dy - height
        box = _Box(left, bottom, left + width, bottom + height)
        if frame.holds(box) and occupied.free(box):
            occupied.add(box)
            return dx, dy, ha, va
    return None


# --- notes and legend -----------------------------------------------------


def _draw_notes(ax: Axes, data: ChartData, plotted: Sequence[rules.DrawAssessment]) -> None:
    if not plotted:
        # In the headroom above where data would be, clear of the cut-off line.
        ax.text(
            0.5,
            0.78,
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
        ax.annotate(
            _no_cutoff_note(data.cancer_type),
            xy=(0.5, 1),
            xycoords="axes fraction",
            xytext=(0, -_ROW_OFFSET_PT),
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
    fig: Figure, data: ChartData, plotted: Sequence[rules.DrawAssessment], flag_codes: list[str]
) -> None:
    """Below the plot, where it never hides data; the flag words' key is its title."""
    entries = _legend_entries(data, plotted)
    # One row when it fits, else two balanced rows.
    ncols = len(entries) if len(entries) <= 6 else math.ceil(len(entries) / 2)
    handles, labels = zip(*_row_major(entries, ncols), strict=True)
    key = "   ".join(f"{_FLAG_LABELS[code][0]} = {_FLAG_LABELS[code][1]}" for code in flag_codes)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=ncols,
        fontsize=7.5,
        frameon=False,
        handlelength=1.8,
        columnspacing=1.6,
        title=f"Flags:   {key}" if key else None,
        title_fontproperties={"size": 7.5},
        labelcolor=TEXT_COLOUR,
    )


def _legend_entries(
    data: ChartData, plotted: Sequence[rules.DrawAssessment]
) -> list[tuple[Artist, str]]:
    categories = [rules.Category.FAVOURABLE, rules.Category.UNFAVOURABLE] if data.cutoff else [None]
    entries: list[tuple[Artist, str]] = [
        (_marker_handle(_STYLES[category]), _STYLES[category].label) for category in categories
    ]
    entries.append((_marker_handle(_NOT_EVALUABLE, edge=1.5), _NOT_EVALUABLE.label))
    interval = Line2D([], [], color="#777777", marker="_", markersize=6, lw=1.0)
    entries.append((interval, "95% interval"))
    if data.cutoff is not None:
        dashed = Line2D([], [], color=CUTOFF_COLOUR, linestyle=(0, (5, 3)), lw=1.1)
        entries.append((dashed, "cut-off"))
        shade = Patch(facecolor=UNFAVOURABLE_COLOUR, alpha=0.12, lw=0)
        entries.append((shade, "unfavourable range"))
    if any(_non_standard(a) for a in plotted if a.evaluable):
        hollow = _marker_handle(_Style("o", TEXT_COLOUR, "", 36), hollow=True)
        entries.append((hollow, "open: non-standard volume"))
    if data.imaging:
        entries.append((Line2D([], [], color=IMAGING_COLOUR, linestyle=":", lw=1.2), "imaging"))
    return entries


def _row_major(entries: list[tuple[Artist, str]], ncols: int) -> list[tuple[Artist, str]]:
    """Reorder so that the legend, which fills columns first, reads row by row."""
    rows = math.ceil(len(entries) / ncols)
    blank = (Line2D([], [], linestyle="none"), "")
    grid = entries + [blank] * (rows * ncols - len(entries))
    return [grid[row * ncols + col] for col in range(ncols) for row in range(rows)]


def _marker_handle(style: _Style, *, hollow: bool = False, edge: float = 0.6) -> Line2D:
    return Line2D([], [], **_marker_props(style, hollow=hollow, edge=edge))


# --- encoders -------------------------------------------------------------


def trend_svg(data: ChartData) -> bytes:
    return _svg_bytes(trend_figure(data))


def trend_png(data: ChartData, *, dpi: int = 110) -> bytes:
    return _png_bytes(trend_figure(data), dpi=dpi)


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
CHART_DESIGN = 1


def cache_key(
    *, patient_id: int, data_version: int, today: date, cutoffs: Mapping[str, int], fmt: str
) -> str:
    """The cache key of a patient's chart: changes whenever what it shows changes.

    The patient's data version (bumped by every write that changes the chart),
    today's date (the x axis ends today), the cut-offs, the format ("svg",
    "png") and the chart design.
    """
    cut = ",".join(f"{k}={v}" for k, v in sorted(cutoffs.items()))
    parts = [CHART_DESIGN, patient_id, data_version, today, cut, fmt]
    return "chart:" + ":".join(str(p) for p in parts)


# --- the sparkline --------------------------------------------------------


def sparkline_svg(rates: Sequence[float | None], cutoff: int | None, *, label: str = "") -> bytes:
    """A tiny trend for a worklist row: the counts on the chart's symlog scale.

    Hand-written SVG rather than matplotlib: a worklist shows dozens of rows and
    a matplotlib figure costs milliseconds each and repeats element ids when
    inlined. Numbers only go in, so nothing needs escaping except `label`.
    `None` is a draw that was not evaluable: it keeps its place with no point.
    The dashed line is the cut-off; the last point is larger, in its
    category's shape (triangle unfavourable, circle favourable).
    """
    width, height, pad = 120.0, 28.0, 4.0
    points = [(i, rate) for i, rate in enumerate(rates) if rate is not None]
    top = _symlog_scalar(max([MIN_DATA_TOP, 2 * (cutoff or 0), *(r for _, r in points)]))
    span = max(len(rates) - 1, 1)

    def xy(i: float, rate: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * i / span
        return round(x, 1), round(height - pad - (height - 2 * pad) * _symlog_scalar(rate) / top, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
        f'role="img" aria-label="{escape(label or _spark_label(rates, cutoff))}">'
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
    for k, ((x, y), (_, rate)) in enumerate(zip(coords, points, strict=True)):
        parts.append(_spark_point(x, y, rate, cutoff, last=k == len(coords) - 1))
    parts.append("</svg>")
    return "".join(parts).encode()


def _spark_point(x: float, y: float, rate: float, cutoff: int | None, *, last: bool) -> str:
    category = rules.categorize(rate, cutoff) if cutoff is not None else None
    colour = _STYLES[category].colour
    if not last:
        return f'<circle cx="{x}" cy="{y}" r="1.6" fill="{colour}"/>'
    if category is rules.Category.UNFAVOURABLE:
        return (
            f'<polygon points="{x:g},{y - 4.5:g} {x - 4.2:g},{y + 3:g} {x + 4.2:g},{y + 3:g}" '
            f'fill="{colour}" stroke="#fff" stroke-width="0.6"/>'
        )
    return f'<circle cx="{x}" cy="{y}" r="3.4" fill="{colour}" stroke="#fff" stroke-width="0.6"/>'


def _spark_label(rates: Sequence[float | None], cutoff: int | None) -> str:
    shown = [wording.format_rate(r) if r is not None else "not evaluable" for r in rates[-6:]]
    if not shown:
        return "No CTC draws"
    cut = f"; cut-off {cutoff}" if cutoff is not None else ""
    return f"CTC per 7.5 mL, oldest to newest: {', '.join(shown)}{cut}"


# --- text alternative -----------------------------------------------------


def chart_text_alternative(data: ChartData) -> str:
    """One or two sentences that say what the chart shows, for alt text and screen readers."""
    plotted = _plotted(data.assessments)
    if not plotted:
        return "No CTC draws recorded yet."
    evaluable = [a for a in plotted if a.evaluable]
    counted = f"{_draws(len(plotted))} ({len(evaluable)} evaluable)"
    if not evaluable:
        sentence = f"No evaluable CTC count yet: {counted}."
    else:
        latest = evaluable[-1]
        rate, on = wording.count_phrase(_rate(latest)), wording.date_text(latest.draw.drawn_on)
        sentence = (
            f"Latest CTC count {rate} on {on}, "
            f"{_category_text(latest, data)}{_trend_text(evaluable)}; {counted}."
        )
    # The category sentence already says "unfavourable" or "not classified".
    said = {rules.FlagCode.UNFAVOURABLE, rules.FlagCode.NO_CUTOFF}
    messages = [flag.message for flag in plotted[-1].flags if flag.code not in said]
    if messages:
        on = wording.date_text(plotted[-1].draw.drawn_on)
        sentence += f" Latest draw ({on}): " + "; ".join(messages) + "."
    return sentence


def _draws(count: int) -> str:
    return f"{count} draw{'s' if count != 1 else ''}"


def _category_text(latest: rules.DrawAssessment, data: ChartData) -> str:
    if latest.category is None:
        return f"not classified (no cut-off for {data.cancer_type or 'this cancer type'})"
    return f"{latest.category.value} (cut-off {data.cutoff})"


def _trend_text(evaluable: Sequence[rules.DrawAssessment]) -> str:
    if len(evaluable) < 2:
        return ""
    previous, latest = evaluable[-2], evaluable[-1]
    change = _rate(latest) - _rate(previous)
    direction = "up from" if change > 0 else "down from" if change < 0 else "unchanged from"
    rate, on = wording.count_phrase(_rate(previous)), wording.date_text(previous.draw.drawn_on)
    return f", {direction} {rate} on {on}"
