"""Turn model rows and what the rules decided into rows the templates only have to display.

No queries and no decisions here. Every value is put into words by
patients.wording, the module the report, the charts and the exports use too,
so the worklist, the patient pages and the report say things the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from django.utils.safestring import SafeString, mark_safe

from patients import rules, wording
from patients.assessment import PatientSeries, ResultItem, WorklistItem
from patients.models import Acknowledgement, CTCDraw, Patient, TreatmentCycle
from patients.reports.sparkline import assessed_sparkline_svg


@dataclass(frozen=True)
class DrawRow:
    draw: CTCDraw
    found: rules.DrawAssessment | None  # None when entered in error
    rate_text: str
    ci_text: str
    category: str  # "favourable", "unfavourable" or ""
    volume_text: str  # "7.5", "4.25": no trailing zeros
    count_text: str = ""  # as measured: "4 in 7.5 mL", "> 1000 in 7.5 mL"
    pooled_text: str = ""  # "pooled with 1 other tube drawn at the same time"
    chance_text: str = ""  # the near-the-cut-off chance, when worth showing
    stands_for_result: bool = False  # the first tube of a result that needs review
    acknowledged: bool = False  # that result's flags are all acknowledged


@dataclass(frozen=True)
class Chip:
    """A reason in one word or two ("rise", "not evaluable"), with its severity."""

    word: str
    severity: str  # "high", "review", "info", or "due" for a draw due


@dataclass(frozen=True)
class LatestCount:
    """What a list says under "Latest count": the latest tube whatever its status, and the
    latest evaluable count beside it (the same words on the worklist and the patient list).
    """

    status_text: str  # the latest tube when it is no result: "rejected 28 Nov: repeat needed"
    rate_text: str  # the latest evaluable sample's count; "" when there is none
    category: str
    chance_text: str
    drawn_on: date | None  # the latest evaluable sample's day


@dataclass(frozen=True)
class WorklistRow:
    cycle: TreatmentCycle
    patient: Patient
    severity: str  # "high", "review", "info", "draw_due" or "none"
    flags: Sequence[rules.Flag]  # as the lists show them: no p-values
    chips: Sequence[Chip]
    latest: LatestCount | None
    sparkline: SafeString
    acknowledgements: Sequence[Acknowledgement]
    state: str  # a rules.PreCycleState value
    state_text: str  # the states that are not flags, in words ("Draw due: ...")
    acknowledged: bool  # every high or review flag covered
    awaits_acknowledgement: bool = False  # a high or review flag nobody has acknowledged

    @property
    def row_id(self) -> str:
        """The row's id on the page, and how an acknowledgement names it (`just_done`)."""
        return f"cycle-{self.cycle.pk}"


@dataclass(frozen=True)
class ResultRow:
    draw: CTCDraw  # the tube that stands for the result (a sample's first tube)
    patient: Patient
    severity: str  # "high" or "review"
    flags: Sequence[rules.Flag]  # as the lists show them: no p-values
    chips: Sequence[Chip]
    rate_text: str  # the sample's count, or the tube's status when not evaluable
    category: str
    chance_text: str  # the near-the-cut-off chance, when it is worth showing
    tubes: Sequence[rules.DrawIn]  # every tube of the result, as the rules read them
    escalated: bool
    age_text: str  # how long the result has waited, "2 days"
    reported_at: datetime  # resulted, or when a lone failed tube was entered

    @property
    def row_id(self) -> str:
        return f"result-{self.draw.pk}"


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    latest: LatestCount | None
    next_cycle_on: date | None
    next_cycle_number: int | None

    @property
    def row_id(self) -> str:
        return f"patient-{self.patient.pk}"


def rate_text(rate: float | None, *, censored: bool = False) -> str:
    """'none detected in 7.5 mL', '7 CTC/7.5 mL', '> 1000 CTC/7.5 mL', or '' when not evaluable."""
    return "" if rate is None else wording.count_phrase(rate, censored=censored)


def sample_rate_text(found: rules.SampleAssessment) -> str:
    """The sample's rate in words; a zero says the volume actually analysed ("none detected
    in 4 mL"), never "in 7.5 mL" for less blood (spec section 1)."""
    sample = found.sample
    if sample.count == 0 and not sample.censored:
        return wording.counted_in_volume(0, sample.volume_ml)
    return wording.count_phrase(found.rate_per_7_5_ml, censored=sample.censored)


def ci_text(ci95: tuple[float, float | None] | None) -> str:
    """'1.6 to 11.7': as on every page, the report and the exports (wording.interval_text)."""
    return "" if ci95 is None else wording.interval_text(ci95)


def draw_row(
    draw: CTCDraw, found: rules.DrawAssessment | None, series: PatientSeries | None = None
) -> DrawRow:
    volume = wording.volume_text(draw.blood_volume_ml)
    count = ""
    if draw.ctc_count is not None:
        count = wording.count_in_volume(
            draw.ctc_count, draw.blood_volume_ml, censored=draw.count_qualifier == ">"
        )
    if found is None:
        return DrawRow(draw, None, "", "", "", volume, count)
    p = found.p_at_or_above_cutoff
    stands = found.needs_review and (found.sample is None or found.sample.sample.key == draw.pk)
    return DrawRow(
        draw=draw,
        found=found,
        rate_text=sample_rate_text(found.sample) if found.evaluable and found.sample else "",
        ci_text=ci_text(found.ci95),
        category=str(found.category or ""),
        volume_text=volume,
        count_text=count,
        pooled_text=_pooled_text(draw, found),
        chance_text=rules.chance_text(p) if p is not None and rules.chance_shown(p) else "",
        stands_for_result=stands,
        acknowledged=series is not None and stands and series.result_acknowledged(found),
    )


def _pooled_text(draw: CTCDraw, found: rules.DrawAssessment) -> str:
    """How a tube relates to the sample it was drawn with, when there is more than one tube."""
    sample = found.sample
    if sample is None:
        return ""
    if not found.evaluable:
        return "drawn with an evaluable sample, which stands for this draw: no flags of its own"
    others = len(sample.sample.tubes) - 1
    if others == 0:
        return ""
    total = wording.volume_text(sample.sample.volume_ml)
    return (
        f"pooled with {others} other tube{'s' if others > 1 else ''} drawn at the same time "
        f"({sample.sample.count:,} cells in {total} mL): the rate, category and flags are the "
        "sample's"
    )


def draw_rows(series: PatientSeries) -> list[DrawRow]:
    """Every draw on record, newest first, with what the rules said about it."""
    rows = [draw_row(d, series.by_draw_id.get(d.pk), series) for d in series.all_draws()]
    return list(reversed(rows))


def worklist_rows(items: Sequence[WorklistItem]) -> list[WorklistRow]:
    return [_worklist_row(item) for item in items]


def _worklist_row(item: WorklistItem) -> WorklistRow:
    series = item.series
    found = item.assessment
    severity = str(found.severity or "none")
    due = found.state is rules.PreCycleState.DRAW_DUE
    if found.severity is None and due:
        severity = "draw_due"
    return WorklistRow(
        cycle=item.cycle,
        patient=item.patient,
        severity=severity,
        flags=list_flags(found.flags),
        chips=chips(found.flags, draw_due=due),
        latest=latest_count(series),
        # Our own SVG built from numbers only (no user text): safe to inline.
        sparkline=mark_safe(assessed_sparkline_svg(series.assessments, series.cutoff).decode()),  # noqa: S308
        acknowledgements=item.acknowledgements,
        state=found.state.value,
        state_text=rules.state_message(found, series.assessments),
        acknowledged=item.acknowledged,
        awaits_acknowledgement=found.needs_review and not item.acknowledged,
    )


def result_rows(items: Sequence[ResultItem], now: datetime) -> list[ResultRow]:
    return [_result_row(item, now) for item in items]


def _result_row(item: ResultItem, now: datetime) -> ResultRow:
    found = item.found
    sample = found.sample
    if sample is not None:
        rate = sample_rate_text(sample)
    else:
        rate = f"{item.draw.get_status_display()}: no count, a repeat draw is needed"
    return ResultRow(
        draw=item.draw,
        patient=item.patient,
        severity=str(item.severity or "none"),
        flags=list_flags(found.flags),
        chips=chips(found.flags),
        rate_text=rate,
        category=str(found.category or ""),
        chance_text=_chance(found),
        tubes=item.tubes,
        escalated=item.escalated,
        age_text=_age(item.reported_at, now),
        reported_at=item.reported_at,
    )


# --- what the lists say -----------------------------------------------------------------

# Each flag's reason in a word or two, for a row read at a glance (the full message is one
# click away). Both conversions are "converted": the chip's severity tells them apart.
CHIP_WORDS: dict[str, str] = {
    rules.FlagCode.BASELINE_UNFAVOURABLE: "baseline",
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: "converted",
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: "persistent",
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: "converted",
    rules.FlagCode.RISE_BEYOND_NOISE: "rise",
    rules.FlagCode.NON_STANDARD_VOLUME: "volume",
    rules.FlagCode.DOXORUBICIN_WINDOW: "doxorubicin",
    rules.FlagCode.MISSING_PRE_CYCLE_DRAW: "missing",
    rules.FlagCode.DISCORDANT_IN_WINDOW: "discordant",
    rules.FlagCode.NOT_EVALUABLE: "not evaluable",
    rules.FlagCode.NO_CUTOFF: "no cut-off",
}
DRAW_DUE_CHIP = Chip("due", "due")


def chips(flags: Sequence[rules.Flag], *, draw_due: bool = False) -> list[Chip]:
    """The reasons of a row, one chip per word, in the flags' order (most severe first)."""
    shown: dict[str, Chip] = {}
    for flag in flags:
        word = CHIP_WORDS.get(flag.code, flag.code.replace("_", " "))
        shown.setdefault(word, Chip(word, str(flag.severity)))
    return [*shown.values(), *([DRAW_DUE_CHIP] if draw_due else [])]


# The rise test's p-value in a flag's message, " (p = 0.012)" or " (p < 0.001)"
# (`rules.format_p_value`): the patient page shows it, the lists do not.
_P_VALUE = re.compile(r" \(p (?:=|<) [0-9.]+\)")


def list_flags(flags: Sequence[rules.Flag]) -> list[rules.Flag]:
    """The flags as the worklist and the results list show them: without p-values."""
    return [replace(flag, message=_P_VALUE.sub("", flag.message)) for flag in flags]


def _chance(found: rules.DrawAssessment) -> str:
    """The near-the-cut-off chance of the rules, when it is worth showing."""
    p = found.p_at_or_above_cutoff
    return rules.chance_text(p) if p is not None and rules.chance_shown(p) else ""


def _short_day(day: date) -> str:
    """ "28 Nov": a recent day in a short status."""
    return f"{day.day} {day:%b}"


def _status_text(tube: rules.DrawIn) -> str:
    """A tube that is no result, in words: "rejected 28 Nov: repeat needed"."""
    day = _short_day(tube.drawn_on)
    match tube.status:
        case rules.DrawStatus.PENDING:
            return f"pending since {day}"
        case rules.DrawStatus.REJECTED | rules.DrawStatus.FAILED:
            return f"{tube.status} {day}: repeat needed"
    return f"{tube.status} {day}"


def latest_count(series: PatientSeries) -> LatestCount | None:
    """The latest tube whatever its status, and the latest evaluable count beside it.

    A tube drawn with an evaluable one (a rejected tube beside a resulted one) is
    part of that sample: the sample is the latest result then. None: no draws.
    """
    found = series.assessments
    if not found:
        return None
    latest_at = max(a.draw.drawn_at for a in found)
    at_latest = [a for a in found if a.draw.drawn_at == latest_at]
    status = "" if any(a.evaluable for a in at_latest) else _status_text(at_latest[-1].draw)
    evaluable = next((a for a in reversed(found) if a.evaluable and a.sample), None)
    if evaluable is None or evaluable.sample is None:
        return LatestCount(status, "", "", "", None)
    return LatestCount(
        status_text=status,
        rate_text=sample_rate_text(evaluable.sample),
        category=str(evaluable.category or ""),
        chance_text=_chance(evaluable),
        drawn_on=evaluable.draw.drawn_on,
    )


def waited_text(draw: CTCDraw, now: datetime) -> str:
    """How long a result to review has waited since it reached the record, in words."""
    return _age(draw.resulted_at or draw.entered_at, now)


def _age(since: datetime, now: datetime) -> str:
    """How long a result has waited, in the largest whole unit: "3 hours", "2 days"."""
    hours = max(0, int((now - since).total_seconds() // 3600))
    if hours < 1:
        return "under an hour"
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{hours // 24} days"


def patient_rows(
    patients: Sequence[Patient], series: Mapping[int, PatientSeries]
) -> list[PatientRow]:
    """Patient-list rows: the latest count as the worklist says it, and the next cycle
    (`next_cycle_on`, `next_cycle_number`: annotations of `PatientQuerySet.with_summary`)."""
    return [
        PatientRow(
            patient=p,
            latest=latest_count(series[p.pk]),
            next_cycle_on=p.next_cycle_on,  # type: ignore[attr-defined]
            next_cycle_number=p.next_cycle_number,  # type: ignore[attr-defined]
        )
        for p in patients
    ]
