"""The CTC report's inputs, and what more than one of its sections uses.

ReportData, VoidedDraw and Acknowledged are the plain data the caller passes
in: no Django, no database, no clock. ReportDocument is the report being
built, with that data and the clinic's time zone. Beside them: the table cell
styles, the flag words and their possible severities, the results (one per
sample), which cycles are upcoming or evaluated, and a draw's rate.
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
class Acknowledged:
    """Who acknowledged a result's or a cycle's flags, and when (the latest that covers them)."""

    by: str  # display name or username
    at: datetime  # aware


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
    # Every cycle with its line and its assessment on the day the report is generated.
    # Upcoming (planned, delayed) and given cycles are shown with theirs; a cancelled
    # cycle's is never read (it may be None).
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
    # Acknowledgements, only of what is acknowledged (every high or review flag
    # covered): by cycle id, and by the id of the tube that stands for a result
    # (a sample's first tube, or a lone not-evaluable tube).
    cycle_acknowledged: Mapping[int, Acknowledged] = field(default_factory=dict)
    result_acknowledged: Mapping[int, Acknowledged] = field(default_factory=dict)


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


# The severities each flag can have (spec sections 3 and 4), for the guide to
# reading the report: the category flags' severity depends on how clear the
# sample is, and doxorubicin lowers high to review.
FLAG_SEVERITIES: dict[str, str] = {
    rules.FlagCode.BASELINE_UNFAVOURABLE: "review",
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: "high or review",
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: "high or review",
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: "info",
    rules.FlagCode.RISE_BEYOND_NOISE: "review",
    rules.FlagCode.NON_STANDARD_VOLUME: "info",
    rules.FlagCode.DOXORUBICIN_WINDOW: "info",
    rules.FlagCode.MISSING_PRE_CYCLE_DRAW: "review",
    rules.FlagCode.DISCORDANT_IN_WINDOW: "review",
    rules.FlagCode.NOT_EVALUABLE: "review",
    rules.FlagCode.NO_CUTOFF: "info",
}


def flag_text(flag: rules.Flag) -> str:
    """A flag in a table or a list: its words and its severity, "conversion to unfavourable
    (review)"."""
    return f"{FLAG_WORDS.get(flag.code, flag.code)} ({flag.severity.value})"


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
    return [item for item in evaluated_cycles(data) if is_upcoming(item[1])]


def evaluated_cycles(
    data: ReportData,
) -> list[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment]]:
    """Upcoming and given cycles with their assessment, by day 1."""
    evaluated = [
        (line, cycle, assessment)
        for line, cycle, assessment in data.cycles
        if assessment is not None and is_evaluated(cycle)
    ]
    return sorted(evaluated, key=lambda item: (item[1].scheduled_date, item[0].line_number))


def is_upcoming(cycle: rules.CycleIn) -> bool:
    return cycle.status in rules.UPCOMING_CYCLE_STATUSES


def is_evaluated(cycle: rules.CycleIn) -> bool:
    """Upcoming and given cycles have a pre-cycle state; a cancelled one has none."""
    return cycle.status in rules.EVALUATED_CYCLE_STATUSES


@dataclass(frozen=True)
class Result:
    """One row of the draws: a sample (its tubes pooled), or a tube that is not part of one.

    `stands_for` is the tube whose assessment carries the result: a sample's
    first tube, or the tube itself. `beside` is set on a rejected or failed
    tube drawn with an evaluable sample: the sample's result.
    """

    stands_for: rules.DrawAssessment
    tubes: tuple[rules.DrawAssessment, ...]
    beside: rules.DrawAssessment | None = None

    @property
    def evaluable(self) -> bool:
        return self.stands_for.evaluable

    @property
    def flags(self) -> tuple[rules.Flag, ...]:
        return () if self.beside is not None else self.stands_for.flags


def results(assessments: Sequence[rules.DrawAssessment]) -> list[Result]:
    """The draws as results, oldest first: each sample once with its tubes, then any
    other tube drawn at the same instant, which refers to it."""
    by_instant: dict[datetime, list[rules.DrawAssessment]] = {}
    for a in assessments:
        by_instant.setdefault(a.draw.drawn_at, []).append(a)
    found: list[Result] = []
    for tubes in by_instant.values():
        pooled = tuple(a for a in tubes if a.evaluable)
        sample = Result(pooled[0], pooled) if pooled else None
        if sample is not None:
            found.append(sample)
        found += [
            Result(a, (a,), beside=sample.stands_for if sample is not None else None)
            for a in tubes
            if not a.evaluable
        ]
    return found


def rate_of(a: rules.DrawAssessment) -> float:
    assert a.rate_per_7_5_ml is not None  # only evaluable draws get here
    return a.rate_per_7_5_ml


def cycle_state_text(
    assessment: rules.CycleAssessment, tubes: Sequence[rules.DrawAssessment]
) -> str:
    """What stands before a cycle, in words, where its flags do not say it.

    The rules' words for a cycle not yet due, a draw due and a result pending;
    "given with no pre-cycle result" for a given cycle that had none (its
    `missing_pre_cycle_draw` flag is shown too); "" for a result in the window
    and for an upcoming cycle's missing draw (its flag says it).
    """
    if assessment.state is rules.PreCycleState.MISSING:
        given = assessment.cycle.status == rules.CycleStatus.GIVEN
        return "given with no pre-cycle result" if given else ""
    return rules.state_message(assessment, tubes)
