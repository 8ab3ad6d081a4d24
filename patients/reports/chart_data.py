"""What a chart is drawn from and how its categories look: plain inputs and style.

The frozen inputs that callers build from the assessments of patients.rules
(ChartData, ImagingPoint), the colour palette, each category's marker style,
and the readings of the inputs that every chart shares: which points are
plotted (one per sample: tubes drawn together are one point), a point's rate,
whether its near-the-cut-off chance is shown, and the doxorubicin windows.
Nothing here draws; no matplotlib, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from patients import rules

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
# The therapy lines' strip along the top, alternating; neutral, apart from the red.
BAND_TINTS = ("#dcdcdc", "#ececec")
DOXORUBICIN_COLOUR = "#f1a340"  # PuOr's orange, drawn light: neither a line band nor red


@dataclass(frozen=True)
class ImagingPoint:
    performed_on: date
    modality: str  # display label, e.g. "CT", "PET-CT", "Bone scan"
    response: str  # RECIST 1.1 code: CR, PR, SD, PD, NE
    note: str = ""  # the radiologist's or clinician's note, kept in the report


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
    # The clinic's zone: a point's tooltip gives its local time of day.
    time_zone: str = "UTC"
    # The points (by the id of the tube that stands for the sample) whose flags
    # needing review are all acknowledged.
    acknowledged: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ChartIdentity:
    """Whose chart it is, printed on a downloaded chart so that a copy always says so."""

    name: str
    mrn: str
    birth_date: date
    made_on: date


@dataclass(frozen=True)
class MarkerStyle:
    marker: str
    colour: str
    label: str
    size: float  # marker area in pt^2 (markersize is its square root)


STYLES: dict[rules.Category | None, MarkerStyle] = {
    rules.Category.FAVOURABLE: MarkerStyle("o", FAVOURABLE_COLOUR, "favourable", 36),
    rules.Category.UNFAVOURABLE: MarkerStyle("^", UNFAVOURABLE_COLOUR, "unfavourable", 48),
    None: MarkerStyle("D", UNCLASSIFIED_COLOUR, "count (not classified)", 26),
}
NOT_EVALUABLE = MarkerStyle("x", NOT_EVALUABLE_COLOUR, "not evaluable", 36)
# A censored count (a lower bound, ">1000"): always unfavourable, drawn as an
# arrow pointing up from its bound ("the count is higher than this").
LOWER_BOUND = MarkerStyle("up-arrow", UNFAVOURABLE_COLOUR, "more than (a lower bound)", 225)


def plotted_points(assessments: Sequence[rules.DrawAssessment]) -> list[rules.DrawAssessment]:
    """What the chart plots, oldest first: one point per sample and per lone failed tube.

    An evaluable sample is one point however many tubes it pools (its first
    tube stands for it and carries the sample's figures). A rejected or failed
    tube is marked "not evaluable", so that a missing result is visible, unless
    it was drawn beside an evaluable sample, which stands for that venepuncture.
    Pending and cancelled tubes have no result to show.
    """
    points = []
    seen: set[datetime] = set()  # a sample is its tubes' instant
    for a in assessments:
        if a.evaluable and a.sample is not None:
            if a.sample.sample.drawn_at not in seen:
                seen.add(a.sample.sample.drawn_at)
                points.append(a)
        elif a.sample is None and a.draw.status in rules.NOT_EVALUABLE_STATUSES:
            points.append(a)
    return points


def point_key(assessment: rules.DrawAssessment) -> int | None:
    """The id of the tube that stands for the point: its sample's key, or the lone tube's."""
    if assessment.sample is not None:
        return assessment.sample.sample.key
    return assessment.draw.id


def rate_of(assessment: rules.DrawAssessment) -> float:
    assert assessment.rate_per_7_5_ml is not None  # only evaluable draws get here
    return assessment.rate_per_7_5_ml


def tubes_of(assessment: rules.DrawAssessment) -> int:
    """How many evaluable tubes the point's sample pools (1 for a single tube)."""
    return len(assessment.sample.sample.tubes) if assessment.sample is not None else 1


def chance_of(assessment: rules.DrawAssessment) -> float | None:
    """The near-the-cut-off chance, when it is worth showing beside the point."""
    p = assessment.p_at_or_above_cutoff
    return p if p is not None and rules.chance_shown(p) else None


def chance_percent(p: float) -> str:
    """The chance as `rules.chance_text` rounds it: "53%"."""
    return f"{round(p * 100)}%"


def doxorubicin_windows(
    lines: Sequence[rules.LineIn], cycles: Sequence[rules.CycleIn]
) -> list[tuple[date, date]]:
    """The local dates (first, last) after each doxorubicin dose while a count may read high.

    Days 1 to 6 after the given date of each cycle of a line that contains
    doxorubicin (the rules' doxorubicin window); overlapping or touching
    windows are merged, oldest first.
    """
    doxorubicin = {line.id for line in lines if line.contains_doxorubicin}
    doses = sorted(
        {c.given_date for c in cycles if c.given_date is not None and c.line_id in doxorubicin}
    )
    windows: list[tuple[date, date]] = []
    for dose in doses:
        first = dose + timedelta(days=rules.DOXORUBICIN_FIRST_DAY)
        last = dose + timedelta(days=rules.DOXORUBICIN_LAST_DAY)
        if windows and first <= windows[-1][1] + timedelta(days=1):
            windows[-1] = (windows[-1][0], max(last, windows[-1][1]))
        else:
            windows.append((first, last))
    return windows
