"""Change history for people: who changed what in a patient's clinical record, and why.

The rows come from django-simple-history's tables; this lays them out for
reading. `change_history()` gives one patient's whole history for the patient
page; `edits_since()` gives the edits of one row after a version, which a
conflicting editor had not seen (the services put them in `ConflictError`).

Reading only: nothing here writes, and nothing here imports the services
(which import this).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone

from patients import wording
from patients.models import (
    Acknowledgement,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)


@dataclass(frozen=True)
class FieldChange:
    """One field an edit changed, both values as a person reads them."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """One saved version of a clinical row: when, by whom, what changed and why."""

    at: datetime
    by: str
    what: str
    kind: str
    changes: tuple[FieldChange, ...]
    reason: str


_KINDS = {"+": "created", "~": "changed", "-": "deleted"}


def change_history(patient: Patient) -> list[HistoryEntry]:
    """Every saved change to the patient and its lines, cycles, draws, imaging and
    acknowledgements, newest first.

    Seven queries however long the history, one per history table and one for the
    patient's care teams, and an eighth when a changed field refers to users (to show
    their names).
    """
    lines = _history(TherapyLine, patient_id=patient.pk)
    # Lines, cycles and draws are never deleted, so joining the current rows finds them all.
    cycles = _history(TreatmentCycle, therapy_line__patient_id=patient.pk)
    draws = _history(CTCDraw, patient_id=patient.pk)
    groups = [
        _history(Patient, id=patient.pk),
        lines,
        cycles,
        draws,
        _history(ImagingAssessment, patient_id=patient.pk),
        # Of a cycle's flags, or of a result's (its sample's first tube).
        _history(Acknowledgement, patient_id=patient.pk),
    ]
    rows = [(new, _delta(new, old)) for group in groups for new, old in _with_previous(group)]
    teams = _care_teams_of_versions(groups[0])
    names = _user_names(rows)
    numbers = _Numbers(
        lines={h.id: h.line_number for h in lines},
        cycles={h.id: h.number for h in cycles},
        drawn={h.id: h.drawn_at for h in draws},  # the latest version's time
    )
    entries = [
        HistoryEntry(
            at=new.history_date,
            by=new.history_user.get_username() if new.history_user else "",
            what=_describe(new, numbers),
            kind=_KINDS.get(new.history_type, new.history_type),
            changes=tuple(_field_change(new, change, names) for change in delta)
            + _team_change(new, teams),
            reason=new.history_change_reason or "",
        )
        for new, delta in rows
    ]
    return sorted(entries, key=lambda e: e.at, reverse=True)


def edits_since(instance: models.Model, version: int) -> list[HistoryEntry]:
    """The saved edits of one versioned row after `version`, oldest first.

    This is what a second editor did not see when they opened the form: who
    changed what, when and why. Two queries (history, and user names when a
    changed field holds a user).
    """
    records = _history(type(instance), id=instance.pk)
    rows = [
        (new, [c for c in _delta(new, old) if c.field not in _BOOKKEEPING])
        for new, old in _with_previous(records)
        if new.version > version
    ]
    names = _user_names(rows)
    return [
        HistoryEntry(
            at=new.history_date,
            by=new.history_user.get_username() if new.history_user else "",
            what=str(instance._meta.verbose_name).capitalize(),
            kind=_KINDS.get(new.history_type, new.history_type),
            changes=tuple(_field_change(new, change, names) for change in delta),
            reason=new.history_change_reason or "",
        )
        for new, delta in rows
    ]


# Fields the services maintain themselves; an editor did not change them.
_BOOKKEEPING = frozenset({"version"})


def _history(model: type[models.Model], **lookup: Any) -> list[Any]:
    found = model.history.filter(**lookup)  # type: ignore[attr-defined]
    return list(found.select_related("history_user").order_by("history_date", "history_id"))


def _with_previous(records: list[Any]) -> list[tuple[Any, Any]]:
    """Each historical record with the one before it of the same row (or None)."""
    last: dict[int, Any] = {}
    pairs = []
    for row in records:
        pairs.append((row, last.get(row.id)))
        last[row.id] = row
    return pairs


def _delta(new: Any, old: Any) -> list[Any]:
    """The fields an edit changed (simple-history compares the two versions; no query).

    A patient's care teams are compared apart (`_team_change`), from one query for all
    versions: simple-history would read them twice per version.
    """
    if old is None or new.history_type != "~":
        return []
    return new.diff_against(old, excluded_fields=_M2M).changes


# Many-to-many fields kept in a history (a patient's care teams), compared apart.
_M2M = ["care_teams"]


def _care_teams_of_versions(versions: list[Any]) -> dict[int, tuple[str, ...]]:
    """The team names each saved version of a patient held (by history id), and the
    version before each (by history id, key negated): one query."""
    if not versions:
        return {}
    kept = apps.get_model("patients", "HistoricalPatient_care_teams")
    held: dict[int, list[str]] = {v.history_id: [] for v in versions}
    rows = kept.objects.filter(history__in=list(held)).values_list("history", "careteam__name")
    for history_id, name in rows:
        held[history_id].append(name or "")
    named = {history_id: tuple(sorted(names)) for history_id, names in held.items()}
    before: dict[int, tuple[str, ...]] = {}
    for new, old in _with_previous(versions):
        if old is not None:
            before[-new.history_id] = named[old.history_id]
    return named | before


def _team_change(new: Any, teams: Mapping[int, tuple[str, ...]]) -> tuple[FieldChange, ...]:
    """The change of a patient's care teams this version made, if any."""
    if new.instance_type is not Patient or -new.history_id not in teams:
        return ()
    old, now = teams[-new.history_id], teams.get(new.history_id, ())
    if old == now:
        return ()
    return (FieldChange("care teams", ", ".join(old) or "—", ", ".join(now) or "—"),)


def _field_change(new: Any, change: Any, names: Mapping[int, str]) -> FieldChange:
    field = new.instance_type._meta.get_field(change.field)
    return FieldChange(
        field=str(field.verbose_name),
        old=_shown(field, change.old, names),
        new=_shown(field, change.new, names),
    )


def _user_names(rows: Sequence[tuple[Any, list[Any]]]) -> dict[int, str]:
    """Usernames for every user id that a changed field holds: one query, or none."""
    ids: set[int] = set()
    for new, delta in rows:
        for change in delta:
            if _is_user_field(new.instance_type._meta.get_field(change.field)):
                ids.update(v for v in (change.old, change.new) if v is not None)
    if not ids:
        return {}
    User = get_user_model()
    return dict(User.objects.filter(pk__in=ids).values_list("pk", User.USERNAME_FIELD))


def _is_user_field(field: Any) -> bool:
    return field.is_relation and field.related_model is get_user_model()


def _shown(field: Any, value: Any, names: Mapping[int, str]) -> str:
    """A stored value as a person reads it."""
    if value is None or value == "":
        return "—"
    if _is_user_field(field):
        return names.get(value, f"user #{value}")
    if field.is_relation:
        return f"#{value}"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 7.50 reads 7.5, 10.00 reads 10
    if isinstance(value, datetime):
        return wording.time_text(timezone.localtime(value))
    if isinstance(value, date):
        return wording.date_text(value)
    return str(value)


@dataclass(frozen=True)
class _Numbers:
    """What names the rows a history refers to: line and cycle numbers, draw times."""

    lines: Mapping[int, int]
    cycles: Mapping[int, int]
    drawn: Mapping[int, datetime]


def _describe(h: Any, numbers: _Numbers) -> str:
    """The row a historical record belongs to, from its own values (no query)."""
    model = h.instance_type
    if model is Patient:
        return "Patient details"
    if model is TherapyLine:
        return f"Therapy line {h.line_number}"
    if model is TreatmentCycle:
        return f"Cycle {h.number} of line {numbers.lines.get(h.therapy_line_id, '?')}"
    if model is CTCDraw:
        return f"CTC draw of {_when(h.drawn_at)}"
    if model is ImagingAssessment:
        return f"Imaging of {wording.date_text(h.performed_on)}"
    if h.draw_id is not None:
        drawn = numbers.drawn.get(h.draw_id)
        return f"Acknowledgement of the result drawn {_when(drawn) if drawn else '?'}"
    return f"Acknowledgement of cycle {numbers.cycles.get(h.cycle_id, '?')}"


def _when(moment: datetime) -> str:
    return wording.time_text(timezone.localtime(moment))


# --- corrections shown beside a draw ---------------------------------------------------

# What a draw's result is; a change to any of these is a correction a clinician must see.
_RESULT_FIELDS = ("drawn_at", "blood_volume_ml", "status", "ctc_count", "count_qualifier")


@dataclass(frozen=True)
class Correction:
    """One correction of a draw's result: the values it replaced, by whom, when and why."""

    at: datetime
    by: str  # the person's full name ("" for an interface)
    reason: str
    changes: tuple[FieldChange, ...]
    was: str  # the result before it, in words ("3 in 7.5 mL", "pending")


@dataclass(frozen=True)
class DrawCorrections:
    """A corrected draw: what it first said, and every correction since, newest first."""

    original: str
    corrections: tuple[Correction, ...]

    @property
    def latest(self) -> Correction:
        return self.corrections[0]


def draw_corrections(draws: Sequence[CTCDraw]) -> dict[int, DrawCorrections]:
    """The corrected draws among `draws`, by id: each change to a result after it was
    recorded, except a pending tube getting its result (that completes it).

    One query for any number of draws, edited or not (none for no draws).
    """
    if not draws:
        return {}
    edited = {d.pk for d in draws if d.version > 1}
    patients = {d.patient_id for d in draws}
    records = [h for h in _history(CTCDraw, patient_id__in=patients) if h.id in edited]
    found: dict[int, tuple[str, list[Correction]]] = {}
    for new, old in _with_previous(records):
        if old is None:
            found[new.id] = (_result_words(new), [])
            continue
        changes = [c for c in _delta(new, old) if c.field in _RESULT_FIELDS]
        if not changes or old.status == "pending":
            continue
        user = new.history_user
        found.setdefault(new.id, (_result_words(old), []))[1].append(
            Correction(
                at=new.history_date,
                by=(user.get_full_name() or user.get_username()) if user else "",
                reason=new.history_change_reason or "",
                changes=tuple(_field_change(new, change, {}) for change in changes),
                was=_result_words(old),
            )
        )
    return {
        pk: DrawCorrections(original, tuple(reversed(corrections)))
        for pk, (original, corrections) in found.items()
        if corrections
    }


_IMAGING_FIELDS = ("performed_on", "modality", "response", "note")


def imaging_corrections(scans: Sequence[ImagingAssessment]) -> dict[int, DrawCorrections]:
    """The corrected imaging among `scans`, by id, as `draw_corrections` gives for draws.

    One query for any number of scans (none for no scans).
    """
    if not scans:
        return {}
    edited = {s.pk for s in scans if s.version > 1}
    patients = {s.patient_id for s in scans}
    records = [h for h in _history(ImagingAssessment, patient_id__in=patients) if h.id in edited]
    found: dict[int, tuple[str, list[Correction]]] = {}
    for new, old in _with_previous(records):
        if old is None:
            found[new.id] = (_imaging_words(new), [])
            continue
        changes = [c for c in _delta(new, old) if c.field in _IMAGING_FIELDS]
        if not changes:
            continue
        user = new.history_user
        found.setdefault(new.id, (_imaging_words(old), []))[1].append(
            Correction(
                at=new.history_date,
                by=(user.get_full_name() or user.get_username()) if user else "",
                reason=new.history_change_reason or "",
                changes=tuple(_field_change(new, change, {}) for change in changes),
                was=_imaging_words(old),
            )
        )
    return {
        pk: DrawCorrections(original, tuple(reversed(corrections)))
        for pk, (original, corrections) in found.items()
        if corrections
    }


def _imaging_words(h: Any) -> str:
    """A version of imaging in words: "CT of 3 Dec 2026: Stable disease (SD)"."""
    meta = ImagingAssessment._meta
    modality = dict(meta.get_field("modality").flatchoices).get(h.modality, h.modality)
    response = dict(meta.get_field("response").flatchoices).get(h.response, h.response)
    return f"{modality} of {wording.date_text(h.performed_on)}: {response}"


def _result_words(h: Any) -> str:
    """A version of a draw's result in words: "3 in 7.5 mL", or its status."""
    if h.ctc_count is None:
        return str(dict(CTCDraw._meta.get_field("status").flatchoices).get(h.status, h.status))
    volume = f"{h.blood_volume_ml:f}".rstrip("0").rstrip(".")
    bound = "> " if h.count_qualifier == ">" else ""
    return f"{bound}{h.ctc_count:,} in {volume} mL"
