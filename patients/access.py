"""The one gate for patient data: which patients, and which of their records, a user may see.

Every patient-scoped read of the web pages, the API, FHIR, the CSV exports, the
reports and the audit report's patient look-ups asks here, never
`Patient.objects` (or a draw's, line's, cycle's, imaging's or acknowledgement's
manager) directly; `tests/security/test_access_gate.py` keeps it so. Writes go through
`patients.services`, which take records fetched here.

Care teams (`CareTeam`) limit what a user sees, in `_scope` and nothing else:
every other function here derives from it, and an unknown record and another
team's record both answer 404 alike. While at most one team exists every user
sees every patient (a single clinic never has to think about teams); from the
second team on, a user sees the patients of their teams (none without a team),
and staff see every patient.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from patients.models import (
    Acknowledgement,
    CareTeam,
    CTCDraw,
    ImagingAssessment,
    Patient,
    PatientQuerySet,
    TherapyLine,
    TreatmentCycle,
    TreatmentCycleQuerySet,
)

# A queryset of any model, its own QuerySet class kept (`Patient.objects.all().search()`).
Q = TypeVar("Q", bound=QuerySet[models.Model])


# Where `_scope` keeps, on the user object, whether teams limit what they see. A request
# loads its user afresh, so the answer holds for one request (one query per request).
_TEAMS_APPLY = "_ctctrack_care_teams_apply"


def _scope(user: Any) -> QuerySet[Patient] | None:
    """The patients `user` is limited to, or None for every patient of the clinic."""
    if getattr(user, "is_staff", False):
        return None
    applies = getattr(user, _TEAMS_APPLY, None)
    if applies is None:
        # One cheap query: is there a second team? (Two rows at most are read.)
        applies = CareTeam.objects.order_by().values("pk")[1:2].exists()
        setattr(user, _TEAMS_APPLY, applies)
    if not applies:
        return None
    if not getattr(user, "is_authenticated", False):
        return Patient.objects.none()
    return Patient.objects.filter(care_teams__members=user)


def afresh(user: Any) -> Any:
    """`user`, with what `_scope` kept on it forgotten: for a process that acts as one
    account for long (the MLLP listener), so a team created since applies to the next
    message."""
    vars(user).pop(_TEAMS_APPLY, None)
    return user


def _visible(queryset: Q, user: Any, path: str) -> Q:
    scope = _scope(user)
    return queryset if scope is None else queryset.filter(**{f"{path}__in": scope})


def patients(user: Any) -> PatientQuerySet:
    return _visible(Patient.objects.all(), user, "pk")


def patient(user: Any, pk: Any, *, related: tuple[str, ...] = ("oncologist",)) -> Patient:
    """The patient (with their oncologist unless told otherwise), if `user` may see them;
    else 404."""
    return get_object_or_404(patients(user).select_related(*related), pk=pk)


def patient_and_latest_acknowledgement(user: Any, pk: Any) -> tuple[Patient, int]:
    """The patient (no related rows) and the id of the latest acknowledgement of their
    results or cycles (0 if none), in one query, if `user` may see them; else 404.

    What a chart's cache key and ETag need: acknowledgements are never deleted, so a
    new one always raises the id. Whoever sees the patient sees all of theirs.
    """
    acks = Acknowledgement.objects.filter(patient=OuterRef("pk")).order_by("-pk")
    latest = Coalesce(Subquery(acks.values("pk")[:1]), 0)
    found = get_object_or_404(patients(user).annotate(latest_ack=latest), pk=pk)
    # The stubs know the annotation's name but not that the instance carries it.
    return found, int(found.latest_ack)  # type: ignore[attr-defined]


def draws(user: Any) -> QuerySet[CTCDraw]:
    return _visible(CTCDraw.objects.all(), user, "patient")


def draw(user: Any, pk: Any) -> CTCDraw:
    return get_object_or_404(draws(user).select_related("patient"), pk=pk)


def lines(user: Any) -> QuerySet[TherapyLine]:
    return _visible(TherapyLine.objects.all(), user, "patient")


def line(user: Any, pk: Any) -> TherapyLine:
    return get_object_or_404(lines(user).select_related("patient"), pk=pk)


def cycles(user: Any) -> TreatmentCycleQuerySet:
    return _visible(TreatmentCycle.objects.all(), user, "therapy_line__patient")


def cycle(user: Any, pk: Any) -> TreatmentCycle:
    return get_object_or_404(cycles(user).select_related("therapy_line__patient"), pk=pk)


def imaging(user: Any) -> QuerySet[ImagingAssessment]:
    return _visible(ImagingAssessment.objects.all(), user, "patient")


def imaging_record(user: Any, pk: Any) -> ImagingAssessment:
    return get_object_or_404(imaging(user).select_related("patient"), pk=pk)


def acknowledgements(user: Any) -> QuerySet[Acknowledgement]:
    """Acknowledgements of the cycles and of the results of the patients `user` may see."""
    return _visible(Acknowledgement.objects.all(), user, "patient")
