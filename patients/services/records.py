"""The clinical acts: one function per act on a patient's record.

Patients, therapy lines and cycles, CTC draws (entered, corrected, marked as
entered in error), imaging and acknowledgements, each with the acting user
passed explicitly (`by=`). Each validates everything first (field rules,
cross-field rules and the facts that need the clock or other rows) and raises
`ValidationError` naming the fields, so nothing is saved from bad input. Each
saves row by row so that django-simple-history records who changed what, when
and why; bulk `QuerySet.update()` is never used on clinical rows because
history would miss it. Edits carry the version they were based on: a stale
one raises `ConflictError` instead of overwriting someone else's change, and
none at all raises `VersionRequired`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import Max
from django.utils import timezone

from patients import assessment, wording
from patients.messages import (
    ACCESSION_TAKEN,
    ACKNOWLEDGED_AGAIN_MINUTES,
    DRAW_IN_ERROR,
    ERROR_REASON_REQUIRED,
    NOTE_REQUIRED,
    NOTHING_TO_ACKNOWLEDGE,
    NOTHING_TO_ACKNOWLEDGE_CYCLE,
    acknowledged_again,
    line_number_taken,
)
from patients.models import (
    STANDARD_VOLUME_ML,
    Acknowledgement,
    CareTeam,
    CountQualifier,
    CTCDraw,
    CycleStatus,
    DrawStatus,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
    Versioned,
    censored_bound_error,
)
from patients.rules import NEEDS_REVIEW, Flag
from patients.services import teams
from patients.services.conflicts import ConflictError, Version, VersionRequired

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Whoever acts: the request's user (pages, API), or a system account (imports, lab interfaces).
Actor = AbstractBaseUser | AnonymousUser
V = TypeVar("V", bound=Versioned)
Errors = dict[str, list[str]]


# --- patients ---------------------------------------------------------------

PATIENT_FIELDS = frozenset(
    {
        "mrn",
        "given_name",
        "family_name",
        "birth_date",
        "sex",
        "cancer_type",
        "diagnosed_on",
        "oncologist",
        "active",
    }
)


@transaction.atomic
def register_patient(
    *, by: Actor, care_teams: Sequence[CareTeam] | None = None, **fields: Any
) -> Patient:
    """Register a patient; without `care_teams`, in every team of `by` (none: no team)."""
    _reject_unknown(fields, PATIENT_FIELDS)
    patient = Patient(**fields)
    chosen = teams.teams_of(by) if care_teams is None else list(care_teams)
    _validate(patient, teams.care_team_errors(by, chosen) if care_teams is not None else {})
    _save(patient, by=by, reason="Registered")
    if chosen:
        teams.set_patient_teams(patient, chosen, by=by, reason="Registered in care teams")
    return patient


@transaction.atomic
def update_patient(
    *,
    patient: Patient,
    by: Actor,
    changes: Mapping[str, Any],
    version: Version = None,
    reason: str = "",
) -> Patient:
    changes = dict(changes)
    new_teams = changes.pop("care_teams", None)
    _reject_unknown(changes, PATIENT_FIELDS)
    patient = _lock(patient, version)
    _apply(patient, changes)
    errors = _patient_date_errors(patient)
    if new_teams is not None:
        current = list(patient.care_teams.all())
        errors |= teams.care_team_errors(by, new_teams, current=current)
    _validate(patient, errors)
    if new_teams is not None and teams.teams_changed(patient, new_teams):
        # Teams first, without a history row of their own: the save below writes one row
        # holding both the fields and the teams as they are now.
        patient.skip_history_when_saving = True  # type: ignore[attr-defined]
        try:
            patient.care_teams.set(new_teams)
        finally:
            del patient.skip_history_when_saving  # type: ignore[attr-defined]
    _save(patient, by=by, reason=reason)
    _touch(patient.pk)
    return patient


def _patient_date_errors(patient: Patient) -> Errors:
    """Dates of clinical rows that the new birth date would put before birth."""
    if not patient.birth_date:
        return {}
    first_draw = patient.draws.order_by("drawn_at").values_list("drawn_at", flat=True).first()
    if first_draw and timezone.localdate(first_draw) < patient.birth_date:
        return {"birth_date": ["This patient has CTC draws dated before this birth date."]}
    return {}


# --- therapy lines and cycles -------------------------------------------------


@transaction.atomic
def add_therapy_line(
    *,
    patient: Patient,
    by: Actor,
    regimen: str,
    start_date: date,
    cycle_length_days: int,
    contains_doxorubicin: bool = False,
    line_number: int | None = None,
    end_date: date | None = None,
) -> TherapyLine:
    # Lock the patient so two concurrent "next line number" picks cannot collide.
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    if line_number is None:
        latest = patient.therapy_lines.aggregate(n=Max("line_number"))["n"] or 0
        line_number = latest + 1
    line = TherapyLine(
        patient=patient,
        line_number=line_number,
        regimen=regimen,
        start_date=start_date,
        end_date=end_date,
        cycle_length_days=cycle_length_days,
        contains_doxorubicin=contains_doxorubicin,
    )
    _validate(line, _line_errors(line))
    _save(line, by=by, reason="Therapy line added")
    _touch(patient.pk)
    return line


LINE_FIELDS = frozenset(
    {
        "line_number",
        "regimen",
        "start_date",
        "end_date",
        "cycle_length_days",
        "contains_doxorubicin",
    }
)


@transaction.atomic
def update_therapy_line(
    *, line: TherapyLine, by: Actor, changes: Mapping[str, Any], reason: str = ""
) -> TherapyLine:
    _reject_unknown(changes, LINE_FIELDS)
    line = TherapyLine.objects.select_for_update().get(pk=line.pk)
    _apply(line, changes)
    errors = _line_errors(line)
    first_cycle = line.cycles.order_by("scheduled_date").first()
    if first_cycle and line.start_date and first_cycle.scheduled_date < line.start_date:
        errors["start_date"] = [
            f"Cycle {first_cycle.number} is on {wording.date_text(first_cycle.scheduled_date)}, "
            "before this start date."
        ]
    _validate(line, errors)
    _save(line, by=by, reason=reason)
    _touch(line.patient_id)
    return line


def _line_errors(line: TherapyLine) -> Errors:
    errors: Errors = {}
    if line.line_number is not None:
        clash = TherapyLine.objects.filter(patient=line.patient_id, line_number=line.line_number)
        if clash.exclude(pk=line.pk).exists():
            errors["line_number"] = [line_number_taken(line.line_number)]
    if line.start_date and line.start_date < line.patient.birth_date:
        errors["start_date"] = ["The line cannot start before the patient's birth date."]
    return errors


CYCLE_FIELDS = frozenset({"number", "scheduled_date", "given_date", "status", "status_reason"})


@transaction.atomic
def plan_cycle(*, line: TherapyLine, by: Actor, **fields: Any) -> TreatmentCycle:
    _reject_unknown(fields, CYCLE_FIELDS)
    cycle = TreatmentCycle(therapy_line=line, **fields)
    cycle.first_scheduled_date = cycle.scheduled_date  # day 1 as first planned
    _validate(cycle, _cycle_errors(cycle))
    _save(cycle, by=by, reason="Cycle planned")
    _touch(line.patient_id)
    return cycle


# A line's plan at once: enough for any regimen's course, few enough to read back.
MAX_CYCLES_PLANNED_AT_ONCE = 24


@transaction.atomic
def plan_cycles(
    *,
    line: TherapyLine,
    by: Actor,
    first_number: int,
    count: int,
    first_date: date,
    every_days: int,
) -> list[TreatmentCycle]:
    """Plan `count` cycles of `line`, numbered from `first_number`, day 1 every `every_days`
    days from `first_date`: all of them, or none (every problem named by its field)."""
    errors: Errors = {}
    if not 1 <= count <= MAX_CYCLES_PLANNED_AT_ONCE:
        errors["count"] = [f"Plan from 1 to {MAX_CYCLES_PLANNED_AT_ONCE} cycles at once."]
    if not 1 <= every_days <= 365:
        errors["every_days"] = ["Give a number of days from 1 to 365."]
    if first_date < line.start_date:
        errors["first_date"] = [
            f"Day 1 cannot be before the line starts ({wording.date_text(line.start_date)})."
        ]
    if errors:
        raise ValidationError(errors)
    TherapyLine.objects.select_for_update().filter(pk=line.pk).first()  # numbers stay free
    numbers = range(first_number, first_number + count)
    taken = sorted(
        TreatmentCycle.objects.filter(therapy_line=line, number__in=numbers).values_list(
            "number", flat=True
        )
    )
    if taken:
        listed = ", ".join(f"C{n}" for n in taken)
        errors["first_number"] = [f"Line {line.line_number} already has {listed}."]
    if numbers[-1] > 999:
        errors["count"] = ["Cycles are numbered up to 999."]
    if errors:
        raise ValidationError(errors)
    planned = []
    for offset, number in enumerate(numbers):
        day_1 = first_date + timedelta(days=offset * every_days)
        cycle = TreatmentCycle(
            therapy_line=line, number=number, scheduled_date=day_1, first_scheduled_date=day_1
        )
        _validate(cycle, {})
        _save(cycle, by=by, reason=f"Cycle planned ({count} planned at once)")
        planned.append(cycle)
    _touch(line.patient_id)
    return planned


@transaction.atomic
def update_cycle(
    *,
    cycle: TreatmentCycle,
    by: Actor,
    changes: Mapping[str, Any],
    version: Version = None,
    reason: str = "",
) -> TreatmentCycle:
    """Change a cycle. Correcting the day 1 of a planned cycle that stays planned moves
    its `first_scheduled_date` too (the date was wrong, not delayed); any other change
    of day 1 (a delay) keeps it, so a draw taken for the original date still counts."""
    _reject_unknown(changes, CYCLE_FIELDS)
    cycle = _lock(cycle, version)
    if _corrects_planned_date(cycle, changes):
        cycle.first_scheduled_date = changes["scheduled_date"]
    return _save_cycle_changes(cycle, by=by, changes=changes, reason=reason)


def _corrects_planned_date(cycle: TreatmentCycle, changes: Mapping[str, Any]) -> bool:
    """A planned cycle's day 1 changed with its status still planned (spec section 4)."""
    planned = CycleStatus.PLANNED
    stays_planned = cycle.status == planned and changes.get("status", planned) == planned
    new_date = changes.get("scheduled_date", cycle.scheduled_date)
    return stays_planned and new_date != cycle.scheduled_date


def _save_cycle_changes(
    cycle: TreatmentCycle, *, by: Actor, changes: Mapping[str, Any], reason: str
) -> TreatmentCycle:
    _apply(cycle, changes)
    _validate(cycle, _cycle_errors(cycle))
    _save(cycle, by=by, reason=reason or cycle.status_reason)
    _touch(cycle.therapy_line.patient_id)
    return cycle


@transaction.atomic
def delay_cycle_and_following(
    *,
    cycle: TreatmentCycle,
    by: Actor,
    new_date: date,
    reason: str,
    version: Version = None,
) -> list[TreatmentCycle]:
    """Delay a cycle to `new_date` and move the line's later upcoming cycles by as many days.

    Later cycles that were already given or cancelled stay where they are.
    Returns every cycle that moved, the delayed one first.
    """
    shift = new_date - cycle.scheduled_date
    later = list(
        TreatmentCycle.objects.upcoming()
        .select_for_update()
        .filter(therapy_line=cycle.therapy_line_id, number__gt=cycle.number)
        .order_by("-number")  # last first: no day 1 ever overtakes the next one mid-way
    )
    delayed = update_cycle(
        cycle=cycle,
        by=by,
        changes={
            "status": CycleStatus.DELAYED,
            "status_reason": reason,
            "scheduled_date": new_date,
        },
        version=version,
        reason=reason,
    )
    # Moved along with the delay, under the lock taken above, and not corrections: each
    # keeps its first planned day 1 (and with it its pre-cycle window's start).
    moved = [
        _save_cycle_changes(
            c,
            by=by,
            changes={"scheduled_date": c.scheduled_date + shift},
            reason=f"Moved with cycle {cycle.number}: {reason}",
        )
        for c in later
    ]
    return [delayed, *reversed(moved)]


def _cycle_errors(cycle: TreatmentCycle) -> Errors:
    errors: Errors = {}
    line = cycle.therapy_line
    if cycle.number is not None:
        clash = TreatmentCycle.objects.filter(therapy_line=line, number=cycle.number)
        if clash.exclude(pk=cycle.pk).exists():
            errors["number"] = [f"Line {line.line_number} already has a cycle {cycle.number}."]
    if cycle.scheduled_date and cycle.scheduled_date < line.start_date:
        errors["scheduled_date"] = [
            f"Day 1 cannot be before the line starts ({wording.date_text(line.start_date)})."
        ]
    if cycle.given_date and cycle.status != CycleStatus.GIVEN:
        errors["given_date"] = ["Only a cycle with status 'given' has a given date."]
    if cycle.given_date and cycle.given_date > timezone.localdate():
        errors["given_date"] = ["A cycle cannot have been given on a future date."]
    return errors


# --- CTC draws ----------------------------------------------------------------

DRAW_FIELDS = frozenset(
    {
        "drawn_at",
        "blood_volume_ml",
        "status",
        "ctc_count",
        "count_qualifier",
        "accession",
        "comment",
    }
)


@dataclass(frozen=True)
class DrawSaved:
    """A saved draw and its patient's series as the save assessed it: once, in its transaction.

    What a page shows after the save (the new draw's flags) comes from here,
    not from asking the rules again.
    """

    draw: CTCDraw
    series: assessment.PatientSeries

    @property
    def flags(self) -> tuple[Flag, ...]:
        """The saved draw's flags, most severe first (none when entered in error)."""
        found = self.series.by_draw_id.get(self.draw.pk)
        return found.flags if found else ()


def record_draw(*, patient: Patient, by: Actor, **fields: Any) -> CTCDraw:
    """Record a new draw: the fields of `record_draw_and_assess`, the draw alone back."""
    return record_draw_and_assess(patient=patient, by=by, **fields).draw


@transaction.atomic
def record_draw_and_assess(
    *,
    patient: Patient,
    by: Actor,
    drawn_at: datetime,
    status: str = DrawStatus.RESULTED,
    ctc_count: int | None = None,
    count_qualifier: str = CountQualifier.EXACT,
    blood_volume_ml: Decimal = STANDARD_VOLUME_ML,
    accession: str = "",
    comment: str = "",
    now: datetime | None = None,
) -> DrawSaved:
    """Record a new draw. `count_qualifier` ">" makes `ctc_count` a lower bound."""
    draw = CTCDraw(
        patient=patient,
        drawn_at=drawn_at,
        status=status,
        ctc_count=ctc_count,
        count_qualifier=count_qualifier,
        blood_volume_ml=blood_volume_ml,
        accession=(accession or "").strip(),
        comment=comment or "",
        entered_by=acting_account(by),
    )
    _validate_draw(draw, _draw_errors(draw, now or timezone.now()))
    _mark_resulted(draw, was=None)
    _save(draw, by=by, reason="Draw recorded")
    return DrawSaved(draw, _touch(patient.pk))


def same_day_draws(
    patient: Patient, drawn_at: datetime, *, besides: int | None = None
) -> list[CTCDraw]:
    """The patient's draws (not entered in error) on the local day of `drawn_at`, but `besides`.

    A second draw the same day is usually the same tube entered twice: the forms ask
    for a confirmation before they record it (lab interfaces keep their accession rules).
    """
    day = timezone.localdate(drawn_at)
    zone = timezone.get_current_timezone()
    found = patient.draws.valid().filter(
        drawn_at__gte=datetime.combine(day, datetime.min.time(), tzinfo=zone)
    )
    if day < date.max:  # the last day of the calendar has no next day to stop at
        next_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        found = found.filter(drawn_at__lt=next_day)
    return (
        list(found.exclude(pk=besides).order_by("drawn_at"))
        if besides
        else list(found.order_by("drawn_at"))
    )


def update_draw(*, draw: CTCDraw, by: Actor, **edit: Any) -> CTCDraw:
    """Correct a draw: the arguments of `update_draw_and_assess`, the draw alone back."""
    return update_draw_and_assess(draw=draw, by=by, **edit).draw


@transaction.atomic
def update_draw_and_assess(
    *,
    draw: CTCDraw,
    by: Actor,
    changes: Mapping[str, Any],
    version: Version = None,
    reason: str = "",
    now: datetime | None = None,
) -> DrawSaved:
    _reject_unknown(changes, DRAW_FIELDS)
    draw = _lock(draw, version)
    if draw.entered_in_error:
        raise ValidationError({"non_field_errors": [DRAW_IN_ERROR]})
    was = draw.status
    kept = _volume_kept(draw, changes)
    _apply(draw, changes)
    if "accession" in changes:
        draw.accession = (draw.accession or "").strip()
    _validate_draw(draw, _draw_errors(draw, now or timezone.now()), kept=kept)
    _mark_resulted(draw, was=was)
    _save(draw, by=by, reason=reason)
    return DrawSaved(draw, _touch(draw.patient_id))


@transaction.atomic
def mark_draw_entered_in_error(
    *, draw: CTCDraw, by: Actor, reason: str, version: Version = None
) -> CTCDraw:
    """Keep a wrong draw on record, marked and left out of every rule and chart."""
    draw = _lock(draw, version)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"error_reason": [ERROR_REASON_REQUIRED]})
    if draw.entered_in_error:
        raise ValidationError({"non_field_errors": ["This draw is already marked in error."]})
    draw.entered_in_error = True
    draw.error_reason = reason
    _validate_draw(draw, {}, kept=_volume_kept(draw, {}))
    _save(draw, by=by, reason=f"Entered in error: {reason}")
    _touch(draw.patient_id)
    return draw


def _mark_resulted(draw: CTCDraw, *, was: str | None) -> None:
    """`resulted_at`: when the software recorded the tube as resulted (spec section 5).

    Its entry as resulted, or its change to resulted; a correction of a resulted
    count keeps the time the result first arrived.
    """
    if draw.status != DrawStatus.RESULTED:
        draw.resulted_at = None
    elif was != DrawStatus.RESULTED or draw.resulted_at is None:
        draw.resulted_at = timezone.now()


def _draw_errors(draw: CTCDraw, now: datetime) -> Errors:
    errors: Errors = {}
    if draw.drawn_at:
        if draw.drawn_at > now:
            errors["drawn_at"] = ["The draw time is in the future."]
        elif timezone.localdate(draw.drawn_at) < draw.patient.birth_date:
            errors["drawn_at"] = ["The draw time is before the patient's birth date."]
    if draw.accession:
        clash = CTCDraw.objects.filter(accession=draw.accession).exclude(pk=draw.pk)
        if clash.exists():
            errors["accession"] = [ACCESSION_TAKEN]
    bound_error = _censored_bound_error(draw)
    if bound_error:
        errors["ctc_count"] = [bound_error]
    return errors


def _censored_bound_error(draw: CTCDraw) -> str | None:
    resulted = draw.status == DrawStatus.RESULTED and draw.ctc_count is not None
    if draw.blood_volume_ml is None:
        return None  # a volume that could not be read: reported on its own
    if draw.count_qualifier != CountQualifier.MORE_THAN or not resulted:
        return None  # an exact count, or no count: the model's own checks say the rest
    assert draw.ctc_count is not None  # resulted, above
    return censored_bound_error(draw.ctc_count, draw.blood_volume_ml, draw.patient.cancer_type)


def _volume_kept(draw: CTCDraw, changes: Mapping[str, Any]) -> frozenset[str]:
    """`blood_volume_ml` when an edit leaves it as stored: it is not entered again.

    Rows stored before version 2 of the rules may hold a volume outside today's
    entry range (1.0 to 10.0 mL); correcting another field of such a row, or
    marking it entered in error, must not be refused for a volume nobody typed.
    """
    volume = changes.get("blood_volume_ml", draw.blood_volume_ml)
    same = volume is not None and Decimal(volume) == Decimal(draw.blood_volume_ml)
    return frozenset({"blood_volume_ml"}) if same else frozenset()


# --- imaging --------------------------------------------------------------------


IMAGING_FIELDS = frozenset({"performed_on", "modality", "response", "note"})


@transaction.atomic
def record_imaging(
    *,
    patient: Patient,
    by: Actor,
    performed_on: date,
    modality: str,
    response: str,
    note: str = "",
    today: date | None = None,
) -> ImagingAssessment:
    imaging = ImagingAssessment(
        patient=patient,
        performed_on=performed_on,
        modality=modality,
        response=response,
        note=note or "",
        entered_by=acting_account(by),
    )
    _validate(imaging, _imaging_errors(imaging, today or timezone.localdate()))
    _save(imaging, by=by, reason="Imaging recorded")
    _touch(patient.pk)
    return imaging


@transaction.atomic
def update_imaging(
    *,
    imaging: ImagingAssessment,
    by: Actor,
    changes: Mapping[str, Any],
    version: Version = None,
    reason: str = "",
    today: date | None = None,
) -> ImagingAssessment:
    """Correct imaging: the earlier values stay in its history, with who, when and why."""
    _reject_unknown(changes, IMAGING_FIELDS)
    imaging = _lock(imaging, version)
    if imaging.entered_in_error:
        raise ValidationError({"non_field_errors": [IMAGING_IN_ERROR]})
    errors: Errors = {}
    if not (reason or "").strip():
        errors["reason"] = ["Say why the imaging is corrected."]
    _apply(imaging, changes)
    errors.update(_imaging_errors(imaging, today or timezone.localdate()))
    _validate(imaging, errors)
    _save(imaging, by=by, reason=reason)
    _touch(imaging.patient_id)
    return imaging


@transaction.atomic
def mark_imaging_entered_in_error(
    *, imaging: ImagingAssessment, by: Actor, reason: str, version: Version = None
) -> ImagingAssessment:
    """Keep wrong imaging on record, marked and left out of the chart and the report."""
    imaging = _lock(imaging, version)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"error_reason": [ERROR_REASON_REQUIRED]})
    if imaging.entered_in_error:
        raise ValidationError({"non_field_errors": [IMAGING_IN_ERROR]})
    imaging.entered_in_error = True
    imaging.error_reason = reason
    _validate(imaging, {})
    _save(imaging, by=by, reason=f"Entered in error: {reason}")
    _touch(imaging.patient_id)
    return imaging


IMAGING_IN_ERROR = "This imaging is marked as entered in error: it cannot be changed."


def _imaging_errors(imaging: ImagingAssessment, today: date) -> Errors:
    performed_on = imaging.performed_on
    if performed_on and performed_on > today:
        return {"performed_on": ["The imaging date is in the future."]}
    if performed_on and performed_on < imaging.patient.birth_date:
        return {"performed_on": ["The imaging date is before the patient's birth date."]}
    return {}


# --- acknowledgements ---------------------------------------------------------------


@transaction.atomic
def acknowledge_cycle(*, cycle: TreatmentCycle, by: Actor, note: str) -> Acknowledgement:
    """Record that `by` has seen the flags `cycle` has now; the flags themselves stay.

    The flags are assessed here, from the record, not taken from the caller: what
    is acknowledged is what the rules say at this moment.
    """
    _hold_patient(cycle.therapy_line.patient_id)
    series = assessment.series_for(cycle.therapy_line.patient)
    flags = series.cycle_assessment(cycle).flags
    if not any(f.severity in NEEDS_REVIEW for f in flags):
        raise ValidationError({"non_field_errors": [NOTHING_TO_ACKNOWLEDGE_CYCLE]})
    _refuse_repeat(series, by, "this cycle", lambda ack: ack.cycle_id == cycle.pk)
    return _acknowledge(
        Acknowledgement(cycle=cycle, patient_id=cycle.therapy_line.patient_id),
        flags,
        series,
        by=by,
        note=note,
    )


@transaction.atomic
def acknowledge_result(*, draw: CTCDraw, by: Actor, note: str) -> Acknowledgement:
    """Record that `by` has seen the flags of `draw`'s result: its sample (every tube drawn
    with it) or, for a lone failed or rejected tube, the tube itself.

    Acknowledged from any tube of the sample; recorded against its first tube.
    """
    _hold_patient(draw.patient_id)
    series = assessment.series_for(draw.patient)
    found = series.by_draw_id.get(draw.pk)  # None when entered in error
    if found is None:
        raise ValidationError({"non_field_errors": [DRAW_IN_ERROR]})
    sample = found.sample
    flags = sample.flags if sample is not None else found.flags
    if not any(f.severity in NEEDS_REVIEW for f in flags):
        raise ValidationError({"non_field_errors": [NOTHING_TO_ACKNOWLEDGE]})
    first = sample.sample.key if sample is not None else draw.pk
    _refuse_repeat(series, by, "this result", lambda ack: ack.draw_id == first)
    return _acknowledge(
        Acknowledgement(draw_id=first, patient_id=draw.patient_id), flags, series, by=by, note=note
    )


def _refuse_repeat(
    series: assessment.PatientSeries,
    by: Actor,
    what: str,
    same_item: Callable[[Acknowledgement], bool],
) -> None:
    """Refuse a second acknowledgement of one item by one person within minutes of the
    first: a double submission (a second tap, a resent form), which would otherwise
    record the same thing twice. Read under the patient's lock, from the series."""
    account = acting_account(by)
    since = timezone.now() - timedelta(minutes=ACKNOWLEDGED_AGAIN_MINUTES)
    for ack in reversed(series.acknowledgements):
        if ack.acknowledged_by_id == account.pk and ack.acknowledged_at >= since and same_item(ack):
            at = timezone.localtime(ack.acknowledged_at).strftime("%H:%M")
            raise ValidationError({"non_field_errors": [acknowledged_again(what, at)]})


def _hold_patient(patient_id: int) -> None:
    """Lock the patient's row until the transaction ends, before assessing the patient.

    An acknowledgement stores the ranks from its own assessment, as `_touch` does
    after its update of the same row: so a concurrent write of this patient either
    came first (and is assessed here) or waits, and then ranks with this one in view.
    """
    Patient.objects.select_for_update(no_key=True).filter(pk=patient_id).values_list(
        "pk", flat=True
    ).get()


def _acknowledge(
    ack: Acknowledgement,
    flags: Sequence[Flag],
    series: assessment.PatientSeries,
    *,
    by: Actor,
    note: str,
) -> Acknowledgement:
    """Save the acknowledgement of `flags` and store the ranks it changes (it lowers the
    cycles and results it covers on the worklist and the results to review)."""
    fill_acknowledgement(ack, flags, by=by, note=note)
    _save(ack, by=by, reason=ACKNOWLEDGED_REASON)
    series.acknowledge(ack)
    assessment.store_review_ranks(series)
    return ack


# The change reason of an acknowledgement's history row.
ACKNOWLEDGED_REASON = "Flags acknowledged"


def fill_acknowledgement(
    ack: Acknowledgement, flags: Sequence[Flag], *, by: Actor, note: str, validate: bool = True
) -> Acknowledgement:
    """`ack` of `flags` by `by` with `note`, validated (a blank note refused), not saved:
    what every acknowledgement records, one at a time or in bulk.

    `validate=False` skips the model's own checks (a few queries each: the user and
    the draw exist, the constraints hold) but never the note's: for acknowledgements
    in bulk that differ from one validated in full only in a draw loaded under lock.
    The database's constraints still hold every row.
    """
    ack.acknowledged_by = acting_account(by)
    ack.note = (note or "").strip()
    ack.flags = [
        {"code": f.code, "severity": f.severity, "message": f.message, "source": f.source}
        for f in flags
    ]
    errors: Errors = {}
    if not ack.note:
        errors["note"] = [NOTE_REQUIRED]
    if validate:
        _validate(ack, errors)
    elif errors:
        raise ValidationError(errors)
    return ack


def system_user(username: str) -> AbstractBaseUser:
    """The account that imports and lab interfaces act as, so `entered_by` says where
    a draw came from. It cannot sign in: inactive, with no usable password."""
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


# --- every problem at once ----------------------------------------------------------
#
# A form that finds some fields unreadable (a count of -3, a volume of 0) cannot call
# the use case, which would otherwise report what only it can see (a draw time in the
# future, an accession already used). These run the use case's own checks on the fields
# that could be read, so the form reports every problem in one go. Nothing is saved,
# nothing locked; the use case still checks everything again when it saves.


def patient_entry_errors(fields: Mapping[str, Any], *, patient: Patient | None = None) -> Errors:
    """The checks of `register_patient` (or `update_patient` of `patient`) on `fields`."""
    target = _draft(patient or Patient(), fields, PATIENT_FIELDS)
    return _readable_errors(target, fields, _patient_date_errors(target) if patient else {})


def line_entry_errors(
    fields: Mapping[str, Any], *, patient: Patient, line: TherapyLine | None = None
) -> Errors:
    """The checks of `add_therapy_line` (or `update_therapy_line` of `line`) on `fields`."""
    target = _draft(line or TherapyLine(patient=patient), fields, LINE_FIELDS)
    return _readable_errors(target, fields, _line_errors(target))


def cycle_entry_errors(
    fields: Mapping[str, Any], *, line: TherapyLine, cycle: TreatmentCycle | None = None
) -> Errors:
    """The checks of `plan_cycle` (or `update_cycle` of `cycle`) on `fields`."""
    target = _draft(cycle or TreatmentCycle(therapy_line=line), fields, CYCLE_FIELDS)
    return _readable_errors(target, fields, _cycle_errors(target))


def draw_entry_errors(
    fields: Mapping[str, Any],
    *,
    patient: Patient,
    draw: CTCDraw | None = None,
    now: datetime | None = None,
) -> Errors:
    """The checks of `record_draw_and_assess` (or `update_draw_and_assess`) on `fields`."""
    target = _draft(draw or CTCDraw(patient=patient), fields, DRAW_FIELDS)
    return _readable_errors(target, fields, _draw_errors(target, now or timezone.now()))


def imaging_entry_errors(
    fields: Mapping[str, Any],
    *,
    patient: Patient,
    imaging: ImagingAssessment | None = None,
    today: date | None = None,
) -> Errors:
    """The checks of `record_imaging` (or `correct_imaging`) on `fields`."""
    target = _draft(imaging or ImagingAssessment(patient=patient), fields, IMAGING_FIELDS)
    return _readable_errors(target, fields, _imaging_errors(target, today or timezone.localdate()))


M = TypeVar("M", bound=models.Model)


def _draft(instance: M, fields: Mapping[str, Any], known: frozenset[str]) -> M:
    """An unsaved copy of `instance` with `fields` applied and the other known fields
    (those the form could not read) emptied, so no check reads a stale value."""
    _reject_unknown(fields, known)
    draft = copy.copy(instance)
    for name in known:
        setattr(draft, name, fields.get(name))
    return draft


def _readable_errors(instance: models.Model, fields: Mapping[str, Any], context: Errors) -> Errors:
    """The field, uniqueness and constraint checks of `instance` (not its `clean()`, which
    may read a field that could not be read) and the context `errors`, for `fields` only."""
    found: Errors = {name: list(msgs) for name, msgs in context.items()}
    unread = [f.name for f in instance._meta.concrete_fields if f.name not in fields]
    for check in (instance.clean_fields, instance.validate_unique, instance.validate_constraints):
        try:
            check(exclude=[*unread, *found])
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                found.setdefault(name, []).extend(messages)
    return {name: msgs for name, msgs in found.items() if name in fields}


# --- shared steps ---------------------------------------------------------------


def acting_account(by: Actor) -> User:
    """`by` as an `entered_by` or `acknowledged_by` column records it: a user account.

    Django refuses anything else in such a foreign key with a ValueError, and so does
    this, before the row is built: an anonymous user never enters data.
    """
    if isinstance(by, get_user_model()):
        return by
    raise ValueError(f"{by!r} is not a user account: it cannot enter clinical data.")


def _reject_unknown(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        # A programming error, not user input: the API only passes known fields.
        raise TypeError(f"Unknown field(s): {', '.join(unknown)}")


def _lock(instance: V, version: Version) -> V:
    """Re-read the row under a lock and refuse an edit based on no version or an older one."""
    if version is None:
        raise VersionRequired()
    # The default manager is each versioned model's `objects`, and is typed on any model.
    fresh = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
    if isinstance(version, int) and version != fresh.version:  # not ANY_VERSION
        raise ConflictError(fresh, version)
    return fresh


def _apply(instance: models.Model, changes: Mapping[str, Any]) -> None:
    for field, value in changes.items():
        setattr(instance, field, value)


def _validate(
    instance: models.Model,
    errors: Errors,
    *,
    kept: Collection[str] = (),
    constraints: bool = True,
) -> None:
    """Run the model's own validation and merge in the service's context errors.

    Fields the service already faulted are excluded from the model's checks so
    each field gets one clear message; so are the `kept` fields, stored values an
    edit leaves as they are (the database's constraints still hold them).
    `constraints=False` leaves out the model's `Meta.constraints`, which Django
    validates with a query each: only for a model whose field checks, `clean()`
    and service checks already refuse whatever a constraint would (`_validate_draw`).
    """
    merged: Errors = {field: list(msgs) for field, msgs in errors.items()}
    try:
        instance.full_clean(exclude=[*merged, *kept], validate_constraints=constraints)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            merged.setdefault(field, []).extend(messages)
    if merged:
        raise ValidationError(merged)


def _validate_draw(draw: CTCDraw, errors: Errors, *, kept: Collection[str] = ()) -> None:
    """`_validate` for a draw, without its `Meta.constraints` run as queries.

    Django checks each database constraint of a model with a query of its own
    (eight for a draw, each in a savepoint): half the queries of a lab message.
    Every one of them is already refused in Python with a message naming the
    field: the status and the count qualifier by their choices, the count's and
    the volume's ranges by their validators, the count and the qualifier only
    when resulted and the reason of an error by `CTCDraw.clean()`, the accession
    by `_draw_errors` (`ACCESSION_TAKEN`). The database still holds every one at
    the insert. `tests/records/test_draw_constraints.py` breaks each constraint
    through the services and fails on a constraint added without such a check.

    The patient and the account that enters the draw are rows the service was
    handed (read through the access gate, the acting user), never typed in: their
    existence is not asked again (a query each); their foreign keys hold them.
    """
    _validate(draw, errors, kept=[*kept, "patient", "entered_by"], constraints=False)


def _touch(patient_id: int) -> assessment.PatientSeries:
    """Bump the patient's data version: cached charts of the old version are stale.

    An `UPDATE` on purpose, not a save: this is a cache counter, not clinical data,
    so it has no place in the change history. The same writes change what the rules say, so the
    patient is assessed here, once, in the caller's transaction: the cycles'
    review ranks (the worklist's order) are stored from that assessment, and it
    is returned for the caller to show.
    """
    # The patient is read back by the bump itself (RETURNING), which locks the row: a
    # concurrent writer of the same patient waits for this commit, then assesses with
    # both writes in view.
    series = assessment.series_for(_bump_data_version(patient_id))
    assessment.store_review_ranks(series)
    return series


def _bump_data_version(patient_id: int) -> Patient:
    """`data_version + 1` and the patient's row as it then is, in one statement.

    Incremented in the database, so no bump is lost to a concurrent writer;
    RETURNING saves reading the row again after it (PostgreSQL, and SQLite since 3.35).
    """
    table = Patient._meta.db_table
    # A raw query is routed as a read: this one writes, so it goes where writes go.
    bumped = Patient.objects.db_manager(router.db_for_write(Patient)).raw(
        f"UPDATE {table} SET data_version = data_version + 1 WHERE id = %s RETURNING *",
        [patient_id],
    )
    (patient,) = list(bumped)
    return patient


# simple-history keeps the reason for a change in a column of this many characters.
CHANGE_REASON_MAX_LENGTH = 100


def _save(instance: models.Model, *, by: Actor, reason: str) -> None:
    # simple-history reads these two attributes when it writes the history row. It sets
    # and reads them on any model instance at runtime; no model declares them.
    instance._history_user = by if getattr(by, "is_authenticated", False) else None  # type: ignore[attr-defined]
    instance._change_reason = _fitted(reason or "") or None  # type: ignore[attr-defined]
    if instance.pk is not None and hasattr(instance, "version"):
        instance.version += 1
    instance.save()


def _fitted(reason: str) -> str:
    """The reason as the history column holds it: shortened with "…" when longer.

    A reason a user types is limited to this length where it is typed (forms,
    serializers), so only reasons composed from a longer field are shortened
    (a draw's error reason, a cycle's status reason), and the history row
    keeps that field whole.
    """
    if len(reason) <= CHANGE_REASON_MAX_LENGTH:
        return reason
    return reason[: CHANGE_REASON_MAX_LENGTH - 1] + "…"
