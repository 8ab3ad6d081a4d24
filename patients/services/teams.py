"""Care teams: which teams a patient belongs to, and who belongs to a team.

A change of a patient's teams changes who may see the record, so it is a change
of the record: made here, recorded in the patient's history (who, when, why,
and the teams as they were after it). A non-staff user may only add or remove
teams they belong to; staff any. `access._scope` reads what is set here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from patients.models import CareTeam, Patient

Errors = dict[str, list[str]]

FIELD = "care_teams"
NOT_A_MEMBER = "You may only add or remove care teams you belong to: {names}."
NO_TEAM_LEFT = "Choose at least one care team: without one, only staff would see this patient."


def teams_of(user: Any) -> list[CareTeam]:
    """The teams `user` belongs to (none for a system account without a team)."""
    if not getattr(user, "is_authenticated", False) or user.pk is None:
        return []
    return list(CareTeam.objects.filter(members=user))


def teams_named(names: Iterable[str]) -> tuple[list[CareTeam], Errors]:
    """The teams these names name, and an error naming the field for any unknown name."""
    wanted = list(dict.fromkeys(names))
    found = {t.name: t for t in CareTeam.objects.filter(name__in=wanted)}
    unknown = [n for n in wanted if n not in found]
    if unknown:
        return [], {FIELD: [f"No care team named {', '.join(map(repr, unknown))}."]}
    return [found[n] for n in wanted], {}


def care_team_errors(
    by: Any, teams: Collection[CareTeam], *, current: Collection[CareTeam] = ()
) -> Errors:
    """What is wrong with giving a patient `teams` (who had `current`), as `by`."""
    if getattr(by, "is_staff", False):
        return {}
    own = {t.pk for t in teams_of(by)}
    changed = {t.pk: t for t in [*teams, *current]}
    touched = {t.pk for t in teams} ^ {t.pk for t in current}
    foreign = sorted(changed[pk].name for pk in touched if pk not in own)
    if foreign:
        return {FIELD: [NOT_A_MEMBER.format(names=", ".join(foreign))]}
    if not teams and (current or own):
        return {FIELD: [NO_TEAM_LEFT]}
    return {}


def set_patient_teams(patient: Patient, teams: Sequence[CareTeam], *, by: Any, reason: str) -> None:
    """Give `patient` exactly `teams`, with one history row saying who and why.

    The caller has checked `care_team_errors` and holds the patient's row.
    """
    patient._history_user = by if getattr(by, "is_authenticated", False) else None  # type: ignore[attr-defined]
    patient._change_reason = reason or "Care teams changed"  # type: ignore[attr-defined]
    patient.care_teams.set(teams)


def teams_changed(patient: Patient, teams: Collection[CareTeam]) -> bool:
    return {t.pk for t in patient.care_teams.all()} != {t.pk for t in teams}


# --- managing teams (staff: admin and manage.py) -------------------------------------------


@transaction.atomic
def create_team(name: str) -> CareTeam:
    team = CareTeam(name=name.strip())
    team.full_clean()
    team.save()
    return team


def add_patients_to_team(team: CareTeam, patients: Iterable[Patient], *, by: Any) -> int:
    """Add `team` to each patient not in it yet, row by row (each with its history row)."""
    return _change_team_of(patients, team, joins=True, by=by)


def remove_patients_from_team(team: CareTeam, patients: Iterable[Patient], *, by: Any) -> int:
    """Take `team` from each patient in it, row by row (each with its history row)."""
    return _change_team_of(patients, team, joins=False, by=by)


@transaction.atomic
def _change_team_of(patients: Iterable[Patient], team: CareTeam, *, joins: bool, by: Any) -> int:
    """Add or remove `team` on each patient, locked; how many patients it changed."""
    changed = 0
    for patient in patients:
        locked = Patient.objects.select_for_update().get(pk=patient.pk)
        teams = list(locked.care_teams.all())
        if (team in teams) == joins:
            continue
        kept = [*teams, team] if joins else [t for t in teams if t != team]
        reason = f"Care team {team} {'added' if joins else 'removed'}"
        set_patient_teams(locked, kept, by=by, reason=reason)
        changed += 1
    return changed


def refuse(errors: Errors) -> None:
    if errors:
        raise ValidationError(errors)
