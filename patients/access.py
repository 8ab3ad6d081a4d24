"""The one gate for patient data: which patients, and which of their records, a user may see.

Every patient-scoped read of the web pages, the API, FHIR, the CSV exports, the
reports and the audit report's patient look-ups asks here, never
`Patient.objects` (or a draw's, line's, cycle's, imaging's or acknowledgement's
manager) directly; `tests/security/test_access_gate.py` keeps it so. Writes go through
`patients.services`, which take records fetched here.

One installation serves one clinic today, so a user with a role sees every
patient of it: `_scope` answers "no limit". Care-team scoping changes `_scope`
and nothing else: every other function here derives from it, and an unknown
record and another team's record both answer 404 alike.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from patients.models import (
    Acknowledgement,
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


def _scope(user: Any) -> QuerySet[Patient] | None:
    """The patients `user` is limited to, or None for every patient of the clinic."""
    return None


def _visible(queryset: Q, user: Any, path: str) -> Q:
    scope = _scope(user)
    return queryset if scope is None else queryset.filter(**{f"{path}__in": scope})


def patients(user: Any) -> PatientQuerySet:
    return _visible(Patient.objects.all(), user, "pk")


def patient(user: Any, pk: Any, *, related: tuple[str, ...] = ("oncologist",)) -> Patient:
    """The patient (with their oncologist unless told otherwise), if `user` may see them;
    else 404."""
    return get_object_or_404(patients(user).select_related(*related), pk=pk)


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
    scope = _scope(user)
    found = Acknowledgement.objects.all()
    if scope is None:
        return found
    return found.filter(
        models.Q(cycle__therapy_line__patient__in=scope) | models.Q(draw__patient__in=scope)
    )
