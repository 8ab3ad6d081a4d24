"""Every write to a patient's record goes through a function here.

One function per clinical act, the acting user passed explicitly (`by=`).
Each validates everything first (field rules, cross-field rules and the facts
that need the clock or other rows) and raises `ValidationError` naming the
fields, so nothing is saved from bad input. Each saves row by row so that
django-simple-history records who changed what, when and why; bulk
`QuerySet.update()` is never used on clinical rows because history would miss
it. Edits carry the version they were based on: a stale one raises
`ConflictError` instead of overwriting someone else's change.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F, Max
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from patients import assessment
from patients.audit.history import HistoryEntry, edits_since
from patients.models import (
    STANDARD_VOLUME_ML,
    Acknowledgement,
    CTCDraw,
    CycleStatus,
    DrawStatus,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.rules import Flag

if TYPE_CHECKING:
    from patients.interop.csv.imports import CsvRow
    from patients.interop.hl7.parse import LabResult

User = AbstractBaseUser | AnonymousUser
M = TypeVar("M", bound=models.Model)
Errors = dict[str, list[str]]


class ConflictError(Exception):
    """The edit was based on a version of the record that is no longer current.

    It carries the edits saved since that version (who, when, which fields, old
    and new values, why), so the second editor is told what changed rather than
    only that something did.
    """

    def __init__(self, instance: models.Model, based_on: int) -> None:
        self.instance = instance
        self.based_on = based_on
        self.current = instance.version  # type: ignore[attr-defined]
        self.edits = edits_since(instance, based_on)
        super().__init__(
            f"This {instance._meta.verbose_name} was changed by someone else "
            f"(you edited version {based_on}, it is now version {self.current}). "
            "Check what changed, then save again to apply your changes over it."
        )


def describe_edit(edit: HistoryEntry) -> str:
    """One edit as a plain sentence (the API's `summary` of an edit a conflict lists)."""
    when = timezone.localtime(edit.at).strftime("%Y-%m-%d %H:%M")
    fields = "; ".join(f"{c.field}: {c.old} → {c.new}" for c in edit.changes) or "no field"
    reason = f' (reason: "{edit.reason}")' if edit.reason else ""
    return f"{edit.by or 'An interface'} changed {fields} at {when}{reason}."


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
def register_patient(*, by: User, **fields: Any) -> Patient:
    _reject_unknown(fields, PATIENT_FIELDS)
    patient = Patient(**fields)
    _validate(patient, {})
    _save(patient, by=by, reason="Registered")
    return patient


@transaction.atomic
def update_patient(
    *,
    patient: Patient,
    by: User,
    changes: Mapping[str, Any],
    version: int | None = None,
    reason: str = "",
) -> Patient:
    _reject_unknown(changes, PATIENT_FIELDS)
    patient = _lock(patient, version)
    _apply(patient, changes)
    _validate(patient, _patient_date_errors(patient))
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
    by: User,
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
    errors: Errors = {}
    if TherapyLine.objects.filter(patient=patient, line_number=line_number).exists():
        errors["line_number"] = [f"This patient already has a line {line_number}."]
    if start_date and start_date < patient.birth_date:
        errors["start_date"] = ["The line cannot start before the patient's birth date."]
    _validate(line, errors)
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
    *, line: TherapyLine, by: User, changes: Mapping[str, Any], reason: str = ""
) -> TherapyLine:
    _reject_unknown(changes, LINE_FIELDS)
    line = TherapyLine.objects.select_for_update().get(pk=line.pk)
    _apply(line, changes)
    errors: Errors = {}
    clash = TherapyLine.objects.filter(patient=line.patient_id, line_number=line.line_number)
    if clash.exclude(pk=line.pk).exists():
        errors["line_number"] = [f"This patient already has a line {line.line_number}."]
    first_cycle = line.cycles.order_by("scheduled_date").first()
    if first_cycle and line.start_date and first_cycle.scheduled_date < line.start_date:
        errors["start_date"] = [
            f"Cycle {first_cycle.number} is on {first_cycle.scheduled_date:%Y-%m-%d}, "
            "before this start date."
        ]
    _validate(line, errors)
    _save(line, by=by, reason=reason)
    _touch(line.patient_id)
    return line


CYCLE_FIELDS = frozenset({"number", "scheduled_date", "given_date", "status", "status_reason"})


@transaction.atomic
def plan_cycle(*, line: TherapyLine, by: User, **fields: Any) -> TreatmentCycle:
    _reject_unknown(fields, CYCLE_FIELDS)
    cycle = TreatmentCycle(therapy_line=line, **fields)
    _validate(cycle, _cycle_errors(cycle))
    _save(cycle, by=by, reason="Cycle planned")
    _touch(line.patient_id)
    return cycle


@transaction.atomic
def update_cycle(
    *,
    cycle: TreatmentCycle,
    by: User,
    changes: Mapping[str, Any],
    version: int | None = None,
    reason: str = "",
) -> TreatmentCycle:
    _reject_unknown(changes, CYCLE_FIELDS)
    cycle = _lock(cycle, version)
    _apply(cycle, changes)
    _validate(cycle, _cycle_errors(cycle))
    _save(cycle, by=by, reason=reason or cycle.status_reason)
    _touch(cycle.therapy_line.patient_id)
    return cycle


@transaction.atomic
def delay_cycle_and_following(
    *,
    cycle: TreatmentCycle,
    by: User,
    new_date: date,
    reason: str,
    version: int | None = None,
) -> list[TreatmentCycle]:
    """Delay a cycle to `new_date` and move the line's later upcoming cycles by as many days.

    Later cycles that were already given or cancelled stay where they are.
    Returns every cycle that moved, the delayed one first.
    """
    shift = new_date - cycle.scheduled_date
    later = list(
        TreatmentCycle.objects.select_for_update()
        .filter(
            therapy_line=cycle.therapy_line_id,
            number__gt=cycle.number,
            status__in=[CycleStatus.PLANNED, CycleStatus.DELAYED],
        )
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
    moved = [
        update_cycle(
            cycle=c,
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
            f"Day 1 cannot be before the line starts ({line.start_date:%Y-%m-%d})."
        ]
    if cycle.given_date and cycle.status != CycleStatus.GIVEN:
        errors["given_date"] = ["Only a cycle with status 'given' has a given date."]
    if cycle.given_date and cycle.given_date > timezone.localdate():
        errors["given_date"] = ["A cycle cannot have been given on a future date."]
    return errors


# --- CTC draws ----------------------------------------------------------------

DRAW_FIELDS = frozenset(
    {"drawn_at", "blood_volume_ml", "status", "ctc_count", "accession", "comment"}
)


@transaction.atomic
def record_draw(
    *,
    patient: Patient,
    by: User,
    drawn_at: datetime,
    status: str = DrawStatus.RESULTED,
    ctc_count: int | None = None,
    blood_volume_ml: Decimal = STANDARD_VOLUME_ML,
    accession: str = "",
    comment: str = "",
    now: datetime | None = None,
) -> CTCDraw:
    draw = CTCDraw(
        patient=patient,
        drawn_at=drawn_at,
        status=status,
        ctc_count=ctc_count,
        blood_volume_ml=blood_volume_ml,
        accession=(accession or "").strip(),
        comment=comment or "",
        entered_by=by,
    )
    _validate(draw, _draw_errors(draw, now or timezone.now()))
    _save(draw, by=by, reason="Draw recorded")
    _touch(patient.pk)
    return draw


@transaction.atomic
def update_draw(
    *,
    draw: CTCDraw,
    by: User,
    changes: Mapping[str, Any],
    version: int | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> CTCDraw:
    _reject_unknown(changes, DRAW_FIELDS)
    draw = _lock(draw, version)
    if draw.entered_in_error:
        raise ValidationError(
            {"non_field_errors": ["This draw is marked as entered in error; record a new draw."]}
        )
    _apply(draw, changes)
    if "accession" in changes:
        draw.accession = (draw.accession or "").strip()
    _validate(draw, _draw_errors(draw, now or timezone.now()))
    _save(draw, by=by, reason=reason)
    _touch(draw.patient_id)
    return draw


@transaction.atomic
def mark_draw_entered_in_error(
    *, draw: CTCDraw, by: User, reason: str, version: int | None = None
) -> CTCDraw:
    """Keep a wrong draw on record, marked and left out of every rule and chart."""
    draw = _lock(draw, version)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"error_reason": ["Say why the draw was entered in error."]})
    if draw.entered_in_error:
        raise ValidationError({"non_field_errors": ["This draw is already marked in error."]})
    draw.entered_in_error = True
    draw.error_reason = reason
    _validate(draw, {})
    _save(draw, by=by, reason=f"Entered in error: {reason}")
    _touch(draw.patient_id)
    return draw


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
            errors["accession"] = ["A draw with this accession number already exists."]
    return errors


# --- imaging --------------------------------------------------------------------


@transaction.atomic
def record_imaging(
    *,
    patient: Patient,
    by: User,
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
        entered_by=by,
    )
    errors: Errors = {}
    if performed_on and performed_on > (today or timezone.localdate()):
        errors["performed_on"] = ["The imaging date is in the future."]
    elif performed_on and performed_on < patient.birth_date:
        errors["performed_on"] = ["The imaging date is before the patient's birth date."]
    _validate(imaging, errors)
    _save(imaging, by=by, reason="Imaging recorded")
    _touch(patient.pk)
    return imaging


# --- acknowledgements ---------------------------------------------------------------


@transaction.atomic
def acknowledge_cycle(
    *, cycle: TreatmentCycle, by: User, note: str, flags: Sequence[Flag]
) -> Acknowledgement:
    """Record that `by` has seen `flags` of `cycle`; the flags themselves stay as they are."""
    ack = Acknowledgement(
        cycle=cycle,
        acknowledged_by=by,
        note=(note or "").strip(),
        flags=[{"code": f.code, "severity": f.severity, "message": f.message} for f in flags],
    )
    errors: Errors = {}
    if not ack.note:
        errors["note"] = ["Write a note saying what you checked or did."]
    _validate(ack, errors)
    _save(ack, by=by, reason="Flags acknowledged")
    return ack


# --- imports -------------------------------------------------------------------------

IMPORT_BATCH = 2000


@transaction.atomic
def import_draws(
    *,
    rows: Sequence[CsvRow],
    patients: Mapping[str, Patient],
    by: User,
    source: str,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """Write planned, validated CSV rows as new draws: all of them or none.

    Each draw gets its history row as a save would (type "+", who imported it,
    "Imported from <source>"). Bulk writes, not row-by-row saves (which would
    take minutes for 100,000 rows): COPY on PostgreSQL, `bulk_create_with_history`
    elsewhere. The caller plans the rows first (`csv_import.plan_import`),
    which validates every field against the same rules as `record_draw`; the
    database constraints back that up, and any violation rolls back the lot.
    Returns the new draws' ids.
    """
    write = _draw_writer()
    reason = f"Imported from {source}"[:CHANGE_REASON_MAX_LENGTH]
    created: list[int] = []
    for start in range(0, len(rows), IMPORT_BATCH):
        batch = rows[start : start + IMPORT_BATCH]
        created.extend(write(batch, patients=patients, by=by, reason=reason))
        if progress:
            progress(len(batch))
    touched = {patients[row.mrn].pk for row in rows}
    Patient.objects.filter(pk__in=touched).update(data_version=F("data_version") + 1)
    assessment.refresh_review_ranks(touched)  # the worklist's order, as _touch does
    return created


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


# --- writing imported draws: COPY or the ORM ----------------------------------------


DrawWriter = Callable[..., list[int]]


def _draw_writer() -> DrawWriter:
    """COPY where the database has it (PostgreSQL): about 3x the ORM path's rows per second."""
    return _copy_draws if connection.vendor == "postgresql" else _bulk_create_draws


def _bulk_create_draws(
    rows: Sequence[CsvRow], *, patients: Mapping[str, Patient], by: User, reason: str
) -> list[int]:
    draws = [
        CTCDraw(
            patient=patients[row.mrn],
            drawn_at=row.drawn_at,
            blood_volume_ml=row.blood_volume_ml,
            status=row.status,
            ctc_count=row.ctc_count,
            accession=row.accession,
            comment=row.comment,
            entered_by=by,
        )
        for row in rows
    ]
    created = bulk_create_with_history(
        draws, CTCDraw, batch_size=IMPORT_BATCH, default_user=by, default_change_reason=reason
    )
    return [draw.pk for draw in created]


# The columns COPY writes, in order: every column of the draws table, and of its
# history table but the history row's own id. `_check_copy_columns` refuses to
# import when the models have columns these lists lack (a field added later).
COPY_DRAW_COLUMNS = (
    "id",
    "version",
    "patient_id",
    "drawn_at",
    "blood_volume_ml",
    "status",
    "ctc_count",
    "accession",
    "comment",
    "entered_by_id",
    "entered_at",
    "entered_in_error",
    "error_reason",
)
COPY_HISTORY_COLUMNS = (
    *COPY_DRAW_COLUMNS,
    "history_date",
    "history_change_reason",
    "history_type",
    "history_user_id",
)


def _copy_draws(
    rows: Sequence[CsvRow], *, patients: Mapping[str, Patient], by: User, reason: str
) -> list[int]:
    """The draws and their history rows, as `_bulk_create_draws` writes them, by COPY.

    Ids come from the table's own sequence. Values go in COPY's text format, so
    a draw costs no model instance and no parameter binding; the table's
    constraints still check every row, in the caller's transaction.
    """
    _check_copy_columns()
    ids = _next_draw_ids(len(rows))
    now = timezone.now().isoformat()
    history_tail = f"\t{now}\t{_copy_text(reason)}\t+\t{by.pk}\n"
    draws, history = io.StringIO(), io.StringIO()
    for pk, row in zip(ids, rows, strict=True):
        count = r"\N" if row.ctc_count is None else str(row.ctc_count)
        line = (
            f"{pk}\t1\t{patients[row.mrn].pk}\t{row.drawn_at.isoformat()}\t"
            f"{row.blood_volume_ml}\t{row.status}\t{count}\t{_copy_text(row.accession)}\t"
            f"{_copy_text(row.comment)}\t{by.pk}\t{now}\tf\t"
        )
        draws.write(line + "\n")
        history.write(line + history_tail)
    _copy(CTCDraw._meta.db_table, COPY_DRAW_COLUMNS, draws)
    _copy(CTCDraw.history.model._meta.db_table, COPY_HISTORY_COLUMNS, history)
    return ids


def _check_copy_columns() -> None:
    history_model = CTCDraw.history.model
    expected = {
        CTCDraw: set(COPY_DRAW_COLUMNS),
        history_model: set(COPY_HISTORY_COLUMNS) | {history_model._meta.pk.column},
    }
    for model, columns in expected.items():
        actual = {f.column for f in model._meta.concrete_fields}
        if actual != columns:
            raise RuntimeError(
                f"The COPY import does not write {sorted(actual - columns)} of "
                f"{model._meta.db_table}: add them to services.COPY_DRAW_COLUMNS."
            )


def _next_draw_ids(count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [CTCDraw._meta.db_table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and return escaped.

    The parser has refused NUL characters, which PostgreSQL's text cannot hold.
    """
    if not any(c in value for c in "\\\t\n\r"):
        return value
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy(table: str, columns: Sequence[str], data: io.StringIO) -> None:
    data.seek(0)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # psycopg2's COPY FROM STDIN; the wrapper turns its errors into Django's.
        cursor.cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", data)


# --- shared steps ---------------------------------------------------------------


def _reject_unknown(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        # A programming error, not user input: the API only passes known fields.
        raise TypeError(f"Unknown field(s): {', '.join(unknown)}")


def _lock(instance: M, version: int | None) -> M:
    """Re-read the row under a lock and refuse an edit based on an older version."""
    fresh = type(instance).objects.select_for_update().get(pk=instance.pk)
    if version is not None and version != fresh.version:  # type: ignore[attr-defined]
        raise ConflictError(fresh, version)
    return fresh


def _apply(instance: models.Model, changes: Mapping[str, Any]) -> None:
    for field, value in changes.items():
        setattr(instance, field, value)


def _validate(instance: models.Model, errors: Errors) -> None:
    """Run the model's own validation and merge in the service's context errors.

    Fields the service already faulted are excluded from the model's checks so
    each field gets one clear message.
    """
    merged: Errors = {field: list(msgs) for field, msgs in errors.items()}
    try:
        instance.full_clean(exclude=list(merged))
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            merged.setdefault(field, []).extend(messages)
    if merged:
        raise ValidationError(merged)


def _touch(patient_id: int) -> None:
    """Bump the patient's data version: cached charts of the old version are stale.

    `update()` on purpose: this is a cache counter, not clinical data, so it has
    no place in the change history, and an F() expression cannot lose a bump to
    a concurrent writer. The same writes change what the rules say, so the
    patient's cycles get their review rank (the worklist's order) recomputed
    here too, in the caller's transaction.
    """
    Patient.objects.filter(pk=patient_id).update(data_version=F("data_version") + 1)
    # After the bump, which locks the patient's row: a concurrent writer of the same
    # patient waits for this commit, then ranks with both writes in view.
    assessment.refresh_review_ranks([patient_id])


# simple-history keeps the reason for a change in a column of this many characters.
CHANGE_REASON_MAX_LENGTH = 100


def _save(instance: models.Model, *, by: User, reason: str) -> None:
    # simple-history reads these two attributes when it writes the history row.
    instance._history_user = by if getattr(by, "is_authenticated", False) else None
    instance._change_reason = _fitted(reason or "") or None
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


# --- lab results (HL7 v2: patients/interop/hl7/parse.py reads the message, this stores it) -------

LAB_RECORDED = "recorded"
LAB_CORRECTED = "corrected"
LAB_COMPLETED = "completed"  # a pending draw on record got its result
LAB_UNCHANGED = "unchanged"


@dataclass(frozen=True)
class LabOutcome:
    result: LabResult
    draw: CTCDraw
    action: str  # LAB_RECORDED, LAB_CORRECTED, LAB_COMPLETED or LAB_UNCHANGED


@dataclass(frozen=True)
class LabFieldError:
    result: LabResult
    field: str  # a draw field, "mrn", or "__all__"
    message: str


class LabResultsRefused(Exception):
    """Nothing of the lab message was stored; `errors` says why, per result and field."""

    def __init__(self, errors: Sequence[LabFieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(error.message for error in self.errors))


@transaction.atomic
def record_lab_results(
    *,
    results: Sequence[LabResult],
    by: User,
    source: str,
    now: datetime | None = None,
) -> list[LabOutcome]:
    """Store the CTC results of one lab message: every one of them, or none.

    Draws are matched by accession. A result already on record with the same
    values (status, count, volume, draw time) changes nothing: labs resend. With
    other values it is refused unless the lab sent it as a correction; then the
    draw is updated and its history keeps the earlier values, with the reason
    "Corrected result from lab (<source>)". A correction whose accession is not
    on record is recorded as a new draw. A draw the clinic recorded as pending
    gets the lab's result ("Result from lab (<source>)"). Raises
    `LabResultsRefused`.
    """
    mrns = {r.mrn for r in results}
    patients = {p.mrn: p for p in Patient.objects.filter(mrn__in=mrns)}
    accessions = {r.accession for r in results if r.accession}
    locked = CTCDraw.objects.select_for_update().filter(accession__in=accessions)
    on_record = {d.accession: d for d in locked}
    errors = [
        error
        for r in results
        for error in _lab_result_errors(r, patients.get(r.mrn), on_record.get(r.accession))
    ]
    if errors:
        raise LabResultsRefused(errors)
    return [
        _store_lab_result(r, patients[r.mrn], on_record.get(r.accession), by, source, now)
        for r in results
    ]


def _lab_result_errors(
    result: LabResult, patient: Patient | None, draw: CTCDraw | None
) -> list[LabFieldError]:
    def error(field: str, message: str) -> list[LabFieldError]:
        return [LabFieldError(result, field, message)]

    accession = result.accession
    if patient is None:
        return error(
            "mrn",
            f"No patient with MRN {result.mrn} in CTC Track: register the patient, "
            "then send the result again.",
        )
    if draw is None:
        return []
    if draw.patient_id != patient.pk:
        return error(
            "accession",
            f"Accession {accession} is on record for another patient: check the patient "
            "identifier and the accession.",
        )
    if draw.entered_in_error:
        return error(
            "accession",
            f"The draw with accession {accession} is marked as entered in error in CTC Track; "
            "a lab message does not change it.",
        )
    if _replaces_lab_values(draw, result):
        return []
    if _lab_changes(draw, result, with_comment=False):
        return error(
            "accession",
            f"Accession {accession} is already recorded with other values ({draw}); "
            "send a corrected result to change it.",
        )
    return []


def _store_lab_result(
    result: LabResult,
    patient: Patient,
    draw: CTCDraw | None,
    by: User,
    source: str,
    now: datetime | None,
) -> LabOutcome:
    try:
        if draw is None:
            new = record_draw(
                patient=patient,
                by=by,
                drawn_at=result.drawn_at,
                status=result.status,
                ctc_count=result.ctc_count,
                blood_volume_ml=result.blood_volume_ml,
                accession=result.accession,
                comment=result.comment,
                now=now,
            )
            return LabOutcome(result, new, LAB_RECORDED)
        changes = _lab_changes(draw, result, with_comment=True)
        if not changes or not _replaces_lab_values(draw, result):
            return LabOutcome(result, draw, LAB_UNCHANGED)
        if result.corrected:
            reason, action = f"Corrected result from lab ({source})", LAB_CORRECTED
        else:
            reason, action = f"Result from lab ({source})", LAB_COMPLETED
        draw = update_draw(draw=draw, by=by, changes=changes, reason=reason, now=now)
        return LabOutcome(result, draw, action)
    except ValidationError as exc:
        raise LabResultsRefused(
            [
                LabFieldError(result, field, message)
                for field, messages in _messages_by_field(exc).items()
                for message in messages
            ]
        ) from exc


def _replaces_lab_values(draw: CTCDraw, result: LabResult) -> bool:
    """A corrected result replaces what is on record, and any result fills a pending draw."""
    return result.corrected or draw.status == DrawStatus.PENDING


def _lab_changes(draw: CTCDraw, result: LabResult, *, with_comment: bool) -> dict[str, Any]:
    """The draw fields the lab's values would change (the comment only when the lab sent one)."""
    wanted: dict[str, Any] = {
        "drawn_at": result.drawn_at,
        "status": result.status,
        "ctc_count": result.ctc_count,
        "blood_volume_ml": result.blood_volume_ml,
    }
    if with_comment and result.comment:
        wanted["comment"] = result.comment
    return {field: value for field, value in wanted.items() if getattr(draw, field) != value}


def _messages_by_field(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
