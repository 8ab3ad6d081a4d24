"""The CTC report's inputs, and what more than one of its sections uses.

ReportData and VoidedDraw are the plain data the caller passes in: no Django,
no database, no clock. ReportDocument is the report being built, with that
data and the clinic's time zone. Beside them: the table cell styles, the flag
words, which cycles are upcoming and a draw's rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from patients import rules
from patients.reports import chart_data
from patients.reports.layout import MUTED_COLOUR, TABLE_PT, Document, Style


@dataclass(frozen=True)
class VoidedDraw:
    """A draw marked "entered in error": listed, struck through, never assessed."""

    drawn_at: datetime  # aware
    ctc_count: int | None
    status: str
    error_reason: str


@dataclass(frozen=True)
class ReportData:
    patient_name: str
    mrn: str
    birth_date: date
    sex: str  # display label
    cancer_type: str  # "breast", "prostate", "colorectal"
    cutoff: int | None  # per 7.5 mL, inclusive; None: cannot be classified
    oncologist: str  # display name or ""
    chart: chart_data.ChartData
    assessments: Sequence[rules.DrawAssessment]  # oldest first, evaluable or not
    voided: Sequence[VoidedDraw]
    # Every cycle with its line and assessment. Only the assessments of upcoming
    # (planned or delayed) cycles are read; the others may be None.
    cycles: Sequence[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment | None]]
    imaging: Sequence[chart_data.ImagingPoint]
    accessions: Mapping[int, str]  # draw id -> accession (may be missing)
    comments: Mapping[int, str]  # draw id -> comment (may be missing)
    time_zone: str  # e.g. "Europe/London": times in the report are shown in it
    generated_at: datetime  # aware
    generated_by: str  # username or full name
    # CycleIn carries no reason: cycle id -> why it was delayed or cancelled.
    cycle_reasons: Mapping[int, str] = field(default_factory=dict)
    pre_cycle_window_days: int = rules.DEFAULT_PRE_CYCLE_WINDOW_DAYS
    clear_probability: float = rules.DEFAULT_CLEAR_PROBABILITY


HIGH_COLOUR = chart_data.UNFAVOURABLE_COLOUR
CELL_HIGH = Style(size=TABLE_PT, bold=True, colour=HIGH_COLOUR)
CELL_NOTE = Style(size=TABLE_PT, italic=True, colour=MUTED_COLOUR)
CELL_VOID = Style(size=TABLE_PT, colour=MUTED_COLOUR, struck=True)  # entered in error
CELL_ERROR = Style(size=TABLE_PT, bold=True, colour=HIGH_COLOUR)

NO_DRAWS_TEXT = "No CTC draws recorded."

# Short words for the table's flags column, one per code.
FLAG_WORDS: dict[str, str] = {
    rules.FlagCode.BASELINE_UNFAVOURABLE: "unfavourable at baseline",
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: "conversion to unfavourable",
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: "still unfavourable",
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: "conversion to favourable",
    rules.FlagCode.RISE_BEYOND_NOISE: "rise beyond counting noise",
    rules.FlagCode.NON_STANDARD_VOLUME: "non-standard volume",
    rules.FlagCode.DOXORUBICIN_WINDOW: "doxorubicin window",
    rules.FlagCode.MISSING_PRE_CYCLE_DRAW: "missing pre-cycle draw",
    rules.FlagCode.DISCORDANT_IN_WINDOW: "discordant samples in the window",
    rules.FlagCode.NOT_EVALUABLE: "not evaluable",
    rules.FlagCode.NO_CUTOFF: "no cut-off",
}


def check_aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be time-zone aware")


class ReportDocument(Document):
    """The report's pages, with the data they show and the clinic's time zone."""

    def __init__(self, data: ReportData) -> None:
        super().__init__()
        self.data = data
        self.zone = ZoneInfo(data.time_zone)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)


def upcoming_cycles(
    data: ReportData,
) -> list[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment]]:
    """Planned and delayed cycles with their assessment, soonest first."""
    upcoming = [
        (line, cycle, assessment)
        for line, cycle, assessment in data.cycles
        if assessment is not None and is_upcoming(cycle)
    ]
    return sorted(upcoming, key=lambda item: (item[1].scheduled_date, item[0].line_number))


def is_upcoming(cycle: rules.CycleIn) -> bool:
    return cycle.status in rules.UPCOMING_CYCLE_STATUSES


def rate_of(a: rules.DrawAssessment) -> float:
    assert a.rate_per_7_5_ml is not None  # only evaluable draws get here
    return a.rate_per_7_5_ml
