"""What a chart is drawn from and how its categories look: plain inputs and style.

The frozen inputs that callers build from the assessments of patients.rules
(ChartData, ImagingPoint), the colour palette, each category's marker style,
and the two readings of the inputs that every chart shares: which draws are
plotted and a draw's rate. Nothing here draws; no matplotlib, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

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
BAND_TINTS = ("#eeeeee", "#f7f7f7")  # neutral, so the red shading stays red


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


def plotted_draws(assessments: Sequence[rules.DrawAssessment]) -> list[rules.DrawAssessment]:
    # Pending and cancelled draws have no result to show; rejected and failed
    # ones are marked as "not evaluable" so that a missing result is visible.
    return [a for a in assessments if a.evaluable or a.draw.status in rules.NOT_EVALUABLE_STATUSES]


def rate_of(assessment: rules.DrawAssessment) -> float:
    assert assessment.rate_per_7_5_ml is not None  # only evaluable draws get here
    return assessment.rate_per_7_5_ml
