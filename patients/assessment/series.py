"""A patient's series: every draw, line and cycle, and what the rules said about them.

What the patient page, the API, the charts, the report and the exports show.
Loaded for any number of patients in three queries (`assessment.loader`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, tzinfo

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from patients import rules
from patients.assessment.loader import (
    INSTANCES,
    VALUES,
    Loader,
    PatientRows,
    Shape,
    acknowledgement_in,
    cycle_in,
    rules_fingerprint,
)
from patients.models import Acknowledgement, CTCDraw, Patient, TherapyLine, TreatmentCycle


@dataclass
class PatientSeries:
    """Everything the rules said about one patient's draws and cycles."""

    patient: Patient
    cutoff: int | None
    draws: list[CTCDraw]  # oldest first, aligned with `assessments`
    assessments: list[rules.DrawAssessment]
    lines: list[TherapyLine]
    cycles: list[TreatmentCycle]
    voided: list[CTCDraw] = field(default_factory=list)  # entered in error: shown, never assessed
    acknowledgements: list[Acknowledgement] = field(default_factory=list)  # oldest first
    by_draw_id: dict[int, rules.DrawAssessment] = field(default_factory=dict)
    covers: list[rules.AcknowledgementIn] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_draw_id = {a.draw.id: a for a in self.assessments if a.draw.id is not None}
        self.covers = [acknowledgement_in(a) for a in self.acknowledgements]

    def cycle_assessment(
        self, cycle: TreatmentCycle, today: date | None = None
    ) -> rules.CycleAssessment:
        """The cycle's state and flags on `today` (the clinic's date by default)."""
        return rules.assess_cycle(
            cycle_in(cycle),
            self.assessments,
            today=today or timezone.localdate(),
            window_days=settings.CTC_PRE_CYCLE_WINDOW_DAYS,
        )

    def acknowledge(self, acknowledgement: Acknowledgement) -> None:
        """Take a new acknowledgement into account (after saving it)."""
        self.acknowledgements.append(acknowledgement)
        self.covers.append(acknowledgement_in(acknowledgement))

    def cycle_acknowledged(self, assessment: rules.CycleAssessment) -> bool:
        """Every high or review flag the cycle shows is covered (spec section 5)."""
        return rules.acknowledged(assessment.flags, self.covers, cycle_id=assessment.cycle.id)

    def result_acknowledged(self, found: rules.DrawAssessment) -> bool:
        """A result's (a sample's, or a lone not-evaluable tube's) flags are all covered."""
        return rules.acknowledged(self.result_flags(found), self.covers)

    def acknowledgements_of_cycle(self, cycle_id: int) -> list[Acknowledgement]:
        return [a for a in self.acknowledgements if a.cycle_id == cycle_id]

    def result_flags(self, found: rules.DrawAssessment) -> tuple[rules.Flag, ...]:
        """The flags of the tube's result: its sample's (a failed tube beside a sample
        has none of its own), or a lone failed tube's own."""
        return found.sample.flags if found.sample is not None else found.flags

    def acknowledgements_of_result(self, found: rules.DrawAssessment) -> list[Acknowledgement]:
        """Acknowledgements of this result, or of a cycle, that recorded one of its flags."""
        flags = {(f.code, f.source) for f in self.result_flags(found)}
        return [
            ack
            for ack, covers in zip(self.acknowledgements, self.covers, strict=True)
            if flags & covers.covers
        ]

    def all_draws(self) -> list[CTCDraw]:
        """Every draw on record, those entered in error included, oldest first."""
        return sorted([*self.draws, *self.voided], key=lambda d: (d.drawn_at, d.pk))

    def given_cycles(self) -> list[TreatmentCycle]:
        given = [c for c in self.cycles if c.status == rules.CycleStatus.GIVEN]
        return sorted(given, key=lambda c: (c.scheduled_date, c.therapy_line_id, c.number))

    def upcoming_cycles(self) -> list[TreatmentCycle]:
        upcoming = [c for c in self.cycles if c.status in rules.UPCOMING_CYCLE_STATUSES]
        return sorted(upcoming, key=lambda c: (c.scheduled_date, c.therapy_line_id, c.number))


def cutoff_for(patient: Patient) -> int | None:
    return rules.cutoff_for(patient.cancer_type, settings.CTC_CUTOFFS)


def series_for(patient: Patient) -> PatientSeries:
    """One patient's assessed series: four queries."""
    return series_for_many([patient])[patient.pk]


def series_for_many(
    patients: Iterable[Patient], *, apps: Apps = django_apps
) -> dict[int, PatientSeries]:
    """Assessed series for many patients in four queries, whatever their number.

    `apps` is the model registry: a migration passes its historical one.
    """
    by_id = {p.pk: p for p in patients}
    rows = Loader(INSTANCES, apps).load({pk: p.cancer_type for pk, p in by_id.items()})
    tz = timezone.get_current_timezone()
    return {pk: _series(patient, rows[pk], tz) for pk, patient in by_id.items()}


# The lists' rows: the rules' inputs as plain values, the acknowledgements (shown with who
# acknowledged) as model objects.
LISTED = Shape(
    draws=VALUES.draws,
    lines=VALUES.lines,
    cycles=VALUES.cycles,
    acknowledgements=lambda q: q.select_related("acknowledged_by"),
)


def listed_series_for_many(patients: Iterable[Patient]) -> dict[int, PatientSeries]:
    """What the worklist and the results to review show of each patient: the assessments
    and the acknowledgements, in at most four queries, whatever their number.

    The rules' inputs are read as plain values, not model objects (building a model
    object for every draw, cycle and line of a page's 50 patients was a third of the
    worklist's time), and are not kept: `draws`, `lines`, `cycles` and `voided` are
    empty. A row that shows a draw's record loads it by its id
    (`assessments[i].draw.id`); the assessments are those `series_for_many` gives.

    Each patient's assessments are kept in the cache under the patient's
    `data_version` (bumped by every write the rules read) and `rules_fingerprint`
    (the settings, cut-offs and time zone they read): the rules use no clock, so
    nothing else changes them. A patient found there is not loaded again; the
    acknowledgements are always read (one query).
    """
    by_id = {p.pk: p for p in patients}
    read = rules_fingerprint()
    keys = {pk: _assessed_key(p, read) for pk, p in by_id.items()}
    cached = cache.get_many(keys.values())
    assessed = {pk: cached[key] for pk, key in keys.items() if key in cached}
    loader = Loader(LISTED)
    missing = {pk: p.cancer_type for pk, p in by_id.items() if pk not in assessed}
    if missing:
        tz = timezone.get_current_timezone()
        rows = loader.load(missing)
        fresh = {pk: rows[pk].assess(tz) for pk in missing}
        cache.set_many({keys[pk]: found for pk, found in fresh.items()}, timeout=ASSESSED_SECONDS)
        assessed.update(fresh)
    acknowledgements = loader.acknowledgements(list(by_id))
    return {
        pk: PatientSeries(
            patient,
            cutoff_for(patient),
            [],
            assessed[pk],
            [],
            [],
            [],
            acknowledgements[pk],
        )
        for pk, patient in by_id.items()
    }


# A day at most: what `data_version` cannot see (a change made in the database by hand).
ASSESSED_SECONDS = 24 * 60 * 60
# Raise when what is kept changes shape (the rules' own code is in `rules_fingerprint`).
ASSESSED_DESIGN = 1


def _assessed_key(patient: Patient, read: str) -> str:
    parts = [ASSESSED_DESIGN, patient.pk, patient.data_version, read]
    return "assessed:" + ":".join(str(p) for p in parts)


def _series(patient: Patient, rows: PatientRows, tz: tzinfo) -> PatientSeries:
    assessments = rows.assess(tz)
    by_id = {d.pk: d for d in rows.draws if not d.entered_in_error}
    return PatientSeries(
        patient,
        cutoff_for(patient),
        [by_id[a.draw.id] for a in assessments],
        assessments,
        rows.lines,
        rows.cycles,
        [d for d in rows.draws if d.entered_in_error],
        rows.acknowledgements,
    )
