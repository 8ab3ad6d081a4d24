"""Load what the rules read of any number of patients, in a fixed number of queries.

The one place where rows become the rules' inputs (`rules.DrawIn`, `LineIn`,
`CycleIn`), field by field and by name. Rows are fetched per kind for all the
patients at once and grouped in Python, so the query count never grows with
the number of patients, cycles or draws.

The rows come in one of two shapes. `INSTANCES` are model objects: the series
(`assessment.series`) hands them to the pages, the API and the charts.
`VALUES` are plain named rows of the fields the rules and the review rank read:
refreshing the ranks of thousands of patients after an import
(`assessment.ranks`) spent most of its time building model objects. The
conversions below read the same attribute names from either shape.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from patients import rules


class DrawRow(NamedTuple):
    """A draw as a plain row: the fields the conversions below read, and the group key.

    The `VALUES` shape reads draws as rows of these fields; a bulk import builds
    them by hand for the draws it is about to write (`ranks.rank_with_unwritten`).
    """

    id: int
    patient_id: int
    drawn_at: datetime
    blood_volume_ml: Decimal
    status: str
    ctc_count: int | None
    count_qualifier: str
    entered_in_error: bool
    review_rank: int | None
    review_acknowledged: bool


# The fields a plain row of each kind carries: what the conversions below read, and the
# group key.
DRAW_FIELDS = DrawRow._fields
LINE_FIELDS = ("id", "patient_id", "line_number", "start_date", "contains_doxorubicin", "regimen")
CYCLE_FIELDS = (
    "id",
    "patient_id",
    "therapy_line_id",
    "number",
    "scheduled_date",
    "first_scheduled_date",
    "given_date",
    "status",
    "rank_before_window",
    "rank_in_window",
    "rank_after_day_1",
    "window_opens",
)
ACKNOWLEDGEMENT_FIELDS = ("id", "patient_id", "cycle_id", "draw_id", "flags", "acknowledged_at")


@dataclass(frozen=True)
class Shape:
    """How the rows of each kind are read from their query."""

    draws: Callable[[QuerySet[Any]], Iterable[Any]]
    lines: Callable[[QuerySet[Any]], Iterable[Any]]
    cycles: Callable[[QuerySet[Any]], Iterable[Any]]
    acknowledgements: Callable[[QuerySet[Any]], QuerySet[Any]]


INSTANCES = Shape(
    draws=lambda q: q.select_related("entered_by"),  # those entered in error too: shown
    lines=lambda q: q,
    cycles=lambda q: q.select_related("therapy_line"),
    acknowledgements=lambda q: q.select_related("acknowledged_by", "cycle__therapy_line", "draw"),
)
VALUES = Shape(
    draws=lambda q: q.filter(entered_in_error=False).values_list(*DRAW_FIELDS, named=True),
    lines=lambda q: q.values_list(*LINE_FIELDS, named=True),
    cycles=lambda q: q.values_list(*CYCLE_FIELDS, named=True),
    acknowledgements=lambda q: q.values_list(*ACKNOWLEDGEMENT_FIELDS, named=True),
)


def rules_settings() -> rules.Settings:
    """The settings the rules read, from Django's settings."""
    return rules.Settings(
        clear_probability=settings.CTC_CLEAR_PROBABILITY,
        extra_poisson_cv=settings.CTC_EXTRA_POISSON_CV,
        window_days=settings.CTC_PRE_CYCLE_WINDOW_DAYS,
    )


def rules_fingerprint() -> str:
    """What the rules' assessment of a patient depends on besides the patient's rows, in
    a few bytes: the settings, the cut-offs, the clinic's time zone (it dates each draw),
    and the code of the rules and of this loader (a new release assesses anew, even
    with a cache shared across deployments). Part of the key of anything cached from an
    assessment."""
    found = rules_settings()
    read = ",".join(f"{f.name}={getattr(found, f.name)!r}" for f in fields(rules.Settings))
    cut = ",".join(f"{k}={v}" for k, v in sorted(settings.CTC_CUTOFFS.items()))
    text = f"{read};{cut};{timezone.get_current_timezone_name()};{_code_version()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _code_version() -> str:
    here = Path(__file__).resolve()
    digest = hashlib.sha256()
    for source in (here.parent.parent / "rules.py", here):
        digest.update(source.read_bytes())
    return digest.hexdigest()


# --- rows to the rules' inputs, by name ------------------------------------------------


def draw_in(draw: Any, tz: tzinfo | None = None) -> rules.DrawIn:
    """The draw as the rules see it; `tz` is the clinic's time zone (default: the current one).

    Callers converting many draws look the zone up once and pass it:
    `timezone.localdate` per draw looks it up every time (visible in profiles).
    """
    zone = tz or timezone.get_current_timezone()
    return rules.DrawIn(
        id=draw.id,
        drawn_at=draw.drawn_at,
        # astimezone() of a naive time would guess; the rules refuse one anyway.
        drawn_on=draw.drawn_at.astimezone(zone).date(),
        blood_volume_ml=draw.blood_volume_ml,
        status=draw.status,
        ctc_count=draw.ctc_count,
        count_qualifier=draw.count_qualifier,
    )


def line_in(line: Any) -> rules.LineIn:
    return rules.LineIn(
        id=line.id,
        line_number=line.line_number,
        start_date=line.start_date,
        contains_doxorubicin=line.contains_doxorubicin,
        regimen=line.regimen,
    )


def acknowledgement_in(acknowledgement: Any) -> rules.AcknowledgementIn:
    """What an acknowledgement covers: its flags as recorded, each with its source."""
    return rules.AcknowledgementIn(
        cycle_id=acknowledgement.cycle_id,
        covers=frozenset(
            (flag["code"], flag.get("source"))
            for flag in acknowledgement.flags
            if flag.get("severity") in rules.NEEDS_REVIEW
        ),
    )


def cycle_in(cycle: Any) -> rules.CycleIn:
    return rules.CycleIn(
        id=cycle.id,
        line_id=cycle.therapy_line_id,
        number=cycle.number,
        scheduled_date=cycle.scheduled_date,
        first_scheduled_date=cycle.first_scheduled_date,
        given_date=cycle.given_date,
        status=cycle.status,
    )


@dataclass
class PatientRows:
    """One patient's rows as loaded (draws, lines and cycles in the rules' order)."""

    cancer_type: str
    draws: list[Any] = field(default_factory=list)
    lines: list[Any] = field(default_factory=list)
    cycles: list[Any] = field(default_factory=list)
    acknowledgements: list[Any] = field(default_factory=list)

    @property
    def cutoff(self) -> int | None:
        return rules.cutoff_for(self.cancer_type, settings.CTC_CUTOFFS)

    def assess(self, tz: tzinfo) -> list[rules.DrawAssessment]:
        """The rules' assessment of the draws, oldest first; those entered in error left out."""
        return rules.assess_draws(
            [draw_in(d, tz) for d in self.draws if not d.entered_in_error],
            [line_in(line) for line in self.lines],
            [cycle_in(c) for c in self.cycles],
            cancer_type=self.cancer_type,
            cutoff=self.cutoff,
            settings=rules_settings(),
        )

    def acknowledged(self) -> list[rules.AcknowledgementIn]:
        return [acknowledgement_in(a) for a in self.acknowledgements]


# --- loading ------------------------------------------------------------------------


class Loader:
    """Rows of one shape, per kind, for many patients: one query per kind.

    `apps` is the model registry: a migration passes its historical one.
    """

    def __init__(self, shape: Shape, apps: Apps = django_apps) -> None:
        self.shape = shape
        self.apps = apps

    def load(self, cancer_types: Mapping[int, str]) -> dict[int, PatientRows]:
        """Every row of these patients (id -> cancer type): four queries."""
        ids = list(cancer_types)
        draws, lines, cycles = self.draws(ids), self.lines(ids), self.cycles(ids)
        acknowledgements = self.acknowledgements(ids)
        return {
            pk: PatientRows(cancer_type, draws[pk], lines[pk], cycles[pk], acknowledgements[pk])
            for pk, cancer_type in cancer_types.items()
        }

    def cancer_types(self, patient_ids: Collection[int]) -> dict[int, str]:
        patients = self.apps.get_model("patients", "Patient").objects
        return dict(patients.filter(pk__in=patient_ids).values_list("id", "cancer_type"))

    def draws(self, patient_ids: Collection[int]) -> defaultdict[int, list[Any]]:
        query = (
            self.apps.get_model("patients", "CTCDraw")
            .objects.filter(patient__in=patient_ids)
            .order_by("drawn_at", "id")
        )
        return _by_patient(self.shape.draws(query))

    def lines(self, patient_ids: Collection[int]) -> defaultdict[int, list[Any]]:
        query = (
            self.apps.get_model("patients", "TherapyLine")
            .objects.filter(patient__in=patient_ids)
            .order_by("line_number")
        )
        return _by_patient(self.shape.lines(query))

    def cycles(self, patient_ids: Collection[int]) -> defaultdict[int, list[Any]]:
        query = (
            self.apps.get_model("patients", "TreatmentCycle")
            .objects.filter(therapy_line__patient__in=patient_ids)
            .annotate(patient_id=F("therapy_line__patient_id"))
            .order_by("scheduled_date", "number")
        )
        return _by_patient(self.shape.cycles(query))

    def acknowledgements(self, patient_ids: Collection[int]) -> defaultdict[int, list[Any]]:
        """Acknowledgements of these patients' cycles and results, oldest first.

        Found by their own `patient` column, through its index: the rows read are these
        patients' acknowledgements, whatever the clinic's size and whatever the planner's
        statistics say. Earlier forms found them through the cycles' and the draws'
        tables, and each failed somewhere: an `OR` across the two joins read every cycle
        of the clinic (0.3 s a request at 100,000 patients), and where the statistics
        said the tables were empty (taken before a bulk load) every form with a join
        joined every acknowledgement to every cycle (minutes for one patient).
        `tests/records/test_acknowledgement_loading.py` checks both cases.
        """
        model = self.apps.get_model("patients", "Acknowledgement")
        if not any(f.name == "patient" for f in model._meta.fields):
            return self._acknowledgements_before_0020(model, patient_ids)
        query = model.objects.filter(patient__in=patient_ids).order_by("acknowledged_at", "id")
        return _by_patient(self.shape.acknowledgements(query))

    def _acknowledgements_before_0020(
        self, model: Any, patient_ids: Collection[int]
    ) -> defaultdict[int, list[Any]]:
        """The same, for a migration before the acknowledgement had its patient (its
        historical models): through the cycles' and the draws' tables, one join each.
        An acknowledgement is of a cycle or of a result, never both, so the halves
        never overlap."""
        of_cycles = model.objects.filter(cycle__therapy_line__patient__in=patient_ids).annotate(
            patient_id=F("cycle__therapy_line__patient_id")
        )
        of_results = model.objects.filter(draw__patient__in=patient_ids).annotate(
            patient_id=F("draw__patient_id")
        )
        query = (
            self.shape.acknowledgements(of_cycles.order_by())
            .union(self.shape.acknowledgements(of_results.order_by()), all=True)
            .order_by("acknowledged_at", "id")
        )
        return _by_patient(query)


def _by_patient(rows: Iterable[Any]) -> defaultdict[int, list[Any]]:
    groups: defaultdict[int, list[Any]] = defaultdict(list)
    for row in rows:
        groups[row.patient_id].append(row)
    return groups
