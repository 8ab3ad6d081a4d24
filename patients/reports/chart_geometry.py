"""Where things go on the trend chart: its scale and the geometry of its labels.

The vertical scale (a symmetric log, as matplotlib's transform and in plain
scalar arithmetic for the sparkline), the vertical plan of the plot area and
the frame that turns data into points on the estimated plot area. On that
frame: which y ticks have room, text cut to fit its room, and the boxes and
slots that keep labels from overlapping. Arithmetic only: nothing here draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
from matplotlib.dates import date2num
from matplotlib.scale import SymmetricalLogTransform

from patients import rules
from patients.reports.chart_data import ChartData, ImagingPoint, plotted_points, rate_of

# Symmetric log: linear from 0 to 10 (where the cut-offs 3 and 5 are), then
# logarithmic, so that 0 and 20,000 both read well. The linear part gets the
# height of 1.5 decades because that is where classification happens.
LINTHRESH = 10.0
LINSCALE = 1.5
SYMLOG = SymmetricalLogTransform(10, LINTHRESH, LINSCALE)

# Vertical plan of the plot area: zero a little above the bottom (not-evaluable
# marks sit below it, ZERO_AT of the height), the highest value or interval just
# under the headroom, and in the headroom what is drawn along the top edge (in
# points below it): the therapy lines' strip with the regimens' names, then the
# rows of imaging labels (the note of a cancer type with no cut-off takes the
# first two). The headroom is what these take in points, not a share of the
# height: a patient with low counts gets the plot, not a band of empty red.
ZERO_AT = 0.10
LINE_STRIP_PT = 19
REGIMEN_OFFSET_PT = 7
ROW_OFFSET_PT = 22
ROW_HEIGHT_PT = 11
NOTE_ROWS = 2
# Between the lowest of those and the highest value or interval end.
HEADROOM_GAP_PT = 10
# With nothing along the top: room for the cycles' ticks inside the edge.
MIN_HEADROOM_PT = 14
# However many rows of labels, the data keeps this share of the height at least.
MIN_DATA_SHARE = 0.45
# The widest an imaging label is drawn ("Bone scan: SD" is about 60 pt): longer text is
# cut with an ellipsis rather than pushing the plot out of the figure.
IMAGING_LABEL_PT = 180.0
IMAGING_FONT_PT = 7.5
# The region just above a cut-off of 5 always shows, and no more: a patient with
# low counts gets the linear part, where they are, not half an empty plot.
MIN_DATA_TOP = 10.0

# The final axes size is only known after layout; these estimates of the room
# taken by tick labels, the legend and margin labels keep labels apart (checked
# against the rendered samples in docs/chart-samples, drawn by `make chart-samples`).
_MARGIN_W_IN = 1.45
_MARGIN_H_IN = 1.4
CHAR_WIDTH_EM = 0.62  # average DejaVu Sans glyph width, slightly generous


@dataclass(frozen=True)
class Box:
    left: float
    bottom: float
    right: float
    top: float

    def overlaps(self, other: Box) -> bool:
        return not (
            self.right <= other.left
            or other.right <= self.left
            or self.top <= other.bottom
            or other.top <= self.bottom
        )


class Occupied:
    """Boxes already taken, in a grid of cells so that a check looks only at neighbours.

    A long series has hundreds of markers and whiskers: comparing each label with
    every box would be quadratic, and so would columns alone (a thousand points
    share a few dozen columns). A box is kept in every cell it touches.
    """

    _CELL_PT = 24.0

    def __init__(self, boxes: Iterable[Box] = ()) -> None:
        self._cells: dict[tuple[int, int], list[Box]] = {}
        for box in boxes:
            self.add(box)

    def _keys(self, box: Box) -> list[tuple[int, int]]:
        size = self._CELL_PT
        columns = range(math.floor(box.left / size), math.floor(box.right / size) + 1)
        rows = range(math.floor(box.bottom / size), math.floor(box.top / size) + 1)
        return [(column, row) for column in columns for row in rows]

    def add(self, box: Box) -> None:
        for key in self._keys(box):
            self._cells.setdefault(key, []).append(box)

    def free(self, box: Box) -> bool:
        return not any(
            box.overlaps(other) for key in self._keys(box) for other in self._cells.get(key, ())
        )


@dataclass(frozen=True)
class Frame:
    """Data limits and the estimated plot-area size in points, to keep labels apart."""

    x0: float
    x1: float
    y_bottom: float
    y_top: float
    y_missing: float  # where not-evaluable draws are marked, below zero
    data_top: float  # the highest value or interval end, just under the headroom
    width_pt: float
    height_pt: float
    imaging: tuple[ImagingLabel, ...] = ()  # the imaging labels in view, in their rows

    def x_pt(self, x: float) -> float:
        return _x_pt(x, self.x0, self.x1, self.width_pt)

    def holds(self, box: Box) -> bool:
        return (
            box.left >= 0
            and box.bottom >= 0
            and box.right <= self.width_pt
            and box.top <= self.height_pt
        )

    def y_pt(self, y: float) -> float:
        # symlog_scalar: the very float of matplotlib's transform, without its array round
        # trip (a long series places thousands of boxes).
        low, high = symlog_scalar(self.y_bottom), symlog_scalar(self.y_top)
        return (symlog_scalar(y) - low) / (high - low) * self.height_pt


@lru_cache(maxsize=8192)
def day_num(day: date) -> float:
    """matplotlib's number for a day (its x coordinate), remembered: a long series asks
    for the same days many times over, and each date2num is an array round trip."""
    return float(date2num(day))


def symlog(y: float) -> float:
    return float(SYMLOG.transform(np.array([[y]]))[0, 0])


# symlog in scalar arithmetic, for the sparkline: a worklist page transforms every
# point of every row, and matplotlib's transform costs an array round trip per
# number. The same operations in the same order as its SymmetricalLogTransform,
# with numpy's log (math.log differs from it in the last bit now and then), so the
# very same float: tests compare the two.
_LINSCALE_ADJ = LINSCALE / (1.0 - 1.0 / 10)
_LOG_BASE = float(np.log(10))
_LOG_LINTHRESH = float(np.log(LINTHRESH))


def symlog_scalar(y: float) -> float:
    if abs(y) <= LINTHRESH:
        return y * _LINSCALE_ADJ
    sign = 1.0 if y > 0 else -1.0
    log_y = float(np.log(abs(y)))
    return sign * LINTHRESH * (_LINSCALE_ADJ - _LOG_LINTHRESH / _LOG_BASE + log_y / _LOG_BASE)


def _symlog_inverse(t: float) -> float:
    return float(SYMLOG.inverted().transform(np.array([[t]]))[0, 0])


def text_width_pt(text: str, fontsize: float) -> float:
    return len(text) * fontsize * CHAR_WIDTH_EM


def _x_pt(x: float, x0: float, x1: float, width_pt: float) -> float:
    return (x - x0) / (x1 - x0) * width_pt


@dataclass(frozen=True)
class ImagingLabel:
    """An imaging label ("CT: PR") along the top: its date, text, row and extent in points."""

    x: float
    text: str
    row: int
    left: float
    right: float


def imaging_labels(
    imaging: Iterable[ImagingPoint], x0: float, x1: float, width_pt: float
) -> tuple[ImagingLabel, ...]:
    """The imaging in view, oldest first, each in the first row where it clears the last label."""
    points = sorted(
        (p for p in imaging if x0 <= day_num(p.performed_on) <= x1),
        key=lambda p: (p.performed_on, p.modality),
    )
    row_ends: list[float] = []  # the right edge of the last label in each row
    labels = []
    for point in points:
        x = day_num(point.performed_on)
        text = fit_text(f"{point.modality}: {point.response}", IMAGING_LABEL_PT, IMAGING_FONT_PT)
        left = _x_pt(x, x0, x1, width_pt) + 2
        row = next((i for i, end in enumerate(row_ends) if left > end + 4), len(row_ends))
        right = left + text_width_pt(text, IMAGING_FONT_PT)
        row_ends[row : row + 1] = [right]
        labels.append(ImagingLabel(x, text, row, left, right))
    return tuple(labels)


def headroom_pt(data: ChartData, imaging: Sequence[ImagingLabel]) -> float:
    """What the top edge needs above the data: label rows, else the lines' strip, else ticks."""
    rows = (max(label.row for label in imaging) + 1 if imaging else 0) + (
        0 if data.cutoff is not None else NOTE_ROWS
    )
    if rows:
        return ROW_OFFSET_PT + ROW_HEIGHT_PT * rows + HEADROOM_GAP_PT
    if any(line.start_date <= data.today for line in data.lines):
        return LINE_STRIP_PT + HEADROOM_GAP_PT
    return MIN_HEADROOM_PT


def chart_frame(data: ChartData, width_in: float, height_in: float) -> Frame:
    x0, x1 = _x_range(data)
    width_pt = max(width_in - _MARGIN_W_IN, 1.0) * 72
    height_pt = max(height_in - _MARGIN_H_IN, 1.0) * 72
    rates = [a.rate_per_7_5_ml for a in data.assessments if a.rate_per_7_5_ml is not None]
    # A censored count has no upper limit: its bound is the highest it reaches.
    highs = [a.ci95[1] for a in data.assessments if a.ci95 is not None and a.ci95[1] is not None]
    cutoff_room = 2 * data.cutoff if data.cutoff is not None else 0
    data_top = max([MIN_DATA_TOP, cutoff_room, *rates, *highs])
    imaging = imaging_labels(data.imaging, x0, x1, width_pt)
    # Zero at ZERO_AT of the height, data_top where the headroom begins, in symlog units.
    top_at = max(1 - headroom_pt(data, imaging) / height_pt, ZERO_AT + MIN_DATA_SHARE)
    span = symlog(data_top) / (top_at - ZERO_AT)
    return Frame(
        x0=x0,
        x1=x1,
        y_bottom=_symlog_inverse(-ZERO_AT * span),
        y_top=_symlog_inverse(symlog(data_top) + (1 - top_at) * span),
        y_missing=_symlog_inverse(-ZERO_AT * span * 0.55),
        data_top=data_top,
        width_pt=width_pt,
        height_pt=height_pt,
        imaging=imaging,
    )


def _x_range(data: ChartData) -> tuple[float, float]:
    """From the first thing worth showing to today, padded a little on each side."""
    events = [a.draw.drawn_on for a in plotted_points(data.assessments)]
    events += [line.start_date for line in data.lines]
    events += [point.performed_on for point in data.imaging]
    start = min((day for day in events if day <= data.today), default=data.today)
    start = min(start, data.today - timedelta(days=42))  # never a uselessly narrow window
    pad = max((data.today - start).days * 0.025, 3.0)
    return day_num(start) - pad, day_num(data.today) + pad


def y_ticks(frame: Frame, cutoff: int | None) -> list[int]:
    """Plain-number ticks (0, 1, 2, 5, 10, 20 ...), each only where it has room.

    Candidates are tried in order of importance (0, powers of ten, the cut-off,
    fives, twos, one), so a tall range drops 2 and 20 before 10 or 100.
    """
    top_power = max(1, math.ceil(math.log10(frame.data_top)))
    powers = [10**k for k in range(1, top_power + 1)]
    candidates = [0, *powers, *([cutoff] if cutoff else [])]
    candidates += [5 * p // 10 for p in powers] + [2 * p // 10 for p in powers] + [1]
    candidates += [5 * p for p in powers] + [2 * p for p in powers]
    # No ticks in the empty headroom kept for labels: stop at the last 1-2-5 value
    # at or below the highest value shown (a count of 12, its interval up to 21:
    # 20, not 50, which would promise data up there).
    limit = max(c for c in candidates if c <= frame.data_top)
    chosen: list[int] = []
    for tick in candidates:
        if tick > limit or tick in chosen:
            continue
        y = frame.y_pt(tick)
        if all(abs(y - frame.y_pt(other)) >= 12 for other in chosen):
            chosen.append(tick)
    return sorted(chosen)


def fit_text(text: str, room_pt: float, fontsize: float) -> str:
    """The text, cut with an ellipsis to fit its band; "" when not even two letters fit."""
    if text_width_pt(text, fontsize) <= room_pt:
        return text
    chars = int(room_pt / (fontsize * CHAR_WIDTH_EM)) - 1
    return text[:chars].rstrip() + "…" if chars >= 2 else ""


# Where a flag label may go relative to its marker, tried in this order:
# (dx, dy) in points and the text alignment.
_LABEL_SLOTS = (
    (5, 6, "left", "bottom"),
    (5, -6, "left", "top"),
    (-5, 6, "right", "bottom"),
    (-5, -6, "right", "top"),
    # Further out, clear of the point's own whisker and the cut-off line.
    (5, 18, "left", "bottom"),
    (5, -18, "left", "top"),
    (-5, 18, "right", "bottom"),
    (-5, -18, "right", "top"),
)


def marker_box(frame: Frame, a: rules.DrawAssessment) -> Box:
    x, y = frame.x_pt(day_num(a.draw.drawn_on)), frame.y_pt(rate_of(a))
    if a.censored:  # the arrow rises from the bound
        return Box(x - 5, y - 2, x + 5, y + 12)
    return Box(x - 4, y - 4, x + 4, y + 4)


def free_slot(
    frame: Frame, x: float, y: float, text: str, occupied: Occupied
) -> tuple[float, float, str, str] | None:
    width, height = text_width_pt(text, 7.5) + 2, 10.0
    x_pt, y_pt = frame.x_pt(x), frame.y_pt(y)
    for dx, dy, ha, va in _LABEL_SLOTS:
        left = x_pt + dx if ha == "left" else x_pt + dx - width
        bottom = y_pt + dy if va == "bottom" else y_pt + dy - height
        box = Box(left, bottom, left + width, bottom + height)
        if frame.holds(box) and occupied.free(box):
            occupied.add(box)
            return dx, dy, ha, va
    return None
