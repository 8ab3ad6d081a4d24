"""The clinical record: patients, therapy lines, cycles, CTC draws and imaging.

Invariants live in the database as named constraints, mirrored in `clean()`
so that a clinician gets a message naming the field instead of an integrity
error. Rows are written only through `patients.services`; every model keeps
its change history (django-simple-history). Clinical foreign keys PROTECT: a
clinical row is never cascaded away.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Upper
from django.utils import timezone
from simple_history.models import HistoricalRecords

from patients import rules, wording
from patients.rules import STANDARD_VOLUME_ML  # defined once, in the rules; imported from here too

# Plain values, in order, as the worklist's partial index condition holds them:
# a migration that writes the condition out then names no enum of the rules.
_UPCOMING = tuple(status.value for status in rules.UPCOMING_CYCLE_STATUSES)

# The blood volume a tube may be entered with (spec section 2): a CellSave tube holds
# 10 mL, of which 7.5 mL is analysed. The one definition of the range: the model's
# validators, the CSV import and the draw form all read it from here.
MIN_ENTRY_VOLUME_ML = Decimal("1.0")
MAX_ENTRY_VOLUME_ML = Decimal("10.0")
VOLUME_OUT_OF_RANGE = (
    f"The blood volume must be from {MIN_ENTRY_VOLUME_ML} to {MAX_ENTRY_VOLUME_ML} mL "
    "(a CellSave tube holds 10 mL)."
)
# What the database accepts: wider, because rows stored before version 2 of the rules
# (0.01 to 50 mL) are kept as they were. Entry is held to the range above.
MAX_STORED_VOLUME_ML = Decimal("50")
ACKNOWLEDGED_ON_ANOTHER_PATIENT = "This cycle or result is another patient's."
MAX_CTC_COUNT = 1_000_000


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class CancerType(models.TextChoices):
    BREAST = "breast", "Breast"
    PROSTATE = "prostate", "Prostate"
    COLORECTAL = "colorectal", "Colorectal"


class CycleStatus(models.TextChoices):
    """The rules' cycle statuses (`rules.CycleStatus`: names, values, order) with the labels
    pages show. Declared member by member so that type checkers see them;
    tests/rules/test_vocabulary.py pins that they stay the rules' members."""

    PLANNED = rules.CycleStatus.PLANNED.value, "Planned"
    GIVEN = rules.CycleStatus.GIVEN.value, "Given"
    DELAYED = rules.CycleStatus.DELAYED.value, "Delayed"
    CANCELLED = rules.CycleStatus.CANCELLED.value, "Cancelled"


class DrawStatus(models.TextChoices):
    """The rules' draw statuses (`rules.DrawStatus`), with their labels; pinned likewise."""

    RESULTED = rules.DrawStatus.RESULTED.value, "Resulted"
    REJECTED = rules.DrawStatus.REJECTED.value, "Rejected (pre-analytic)"
    FAILED = rules.DrawStatus.FAILED.value, "Failed (not evaluable)"
    PENDING = rules.DrawStatus.PENDING.value, "Pending"
    CANCELLED = rules.DrawStatus.CANCELLED.value, "Cancelled"


class CountQualifier(models.TextChoices):
    """Whether a resulted count is exact or a lower bound (a censored count, spec section 2)."""

    EXACT = "", "exact"
    MORE_THAN = ">", "more than"


class Modality(models.TextChoices):
    CT = "ct", "CT"
    PET_CT = "pet_ct", "PET-CT"
    BONE_SCAN = "bone_scan", "Bone scan"
    MRI = "mri", "MRI"
    OTHER = "other", "Other"


class RecistResponse(models.TextChoices):
    """RECIST 1.1 overall response."""

    CR = "CR", "Complete response (CR)"
    PR = "PR", "Partial response (PR)"
    SD = "SD", "Stable disease (SD)"
    PD = "PD", "Progressive disease (PD)"
    NE = "NE", "Not evaluable (NE)"


class Versioned(models.Model):
    """A row that carries a version number for optimistic locking.

    Every save through the services bumps it; an edit based on an older
    version is refused instead of silently overwriting the newer one.
    """

    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        abstract = True


class PatientQuerySet(models.QuerySet["Patient"]):
    def with_summary(self, today: date) -> PatientQuerySet:
        """Annotate the next upcoming cycle (`next_cycle_on`, `next_cycle_number`).

        Used by the patient list, which shows it for every patient on a page (and
        the latest count as the rules assess it: `assessment.series_for_many`).
        """
        upcoming = (
            TreatmentCycle.objects.upcoming()
            .filter(therapy_line__patient=OuterRef("pk"), scheduled_date__gte=today)
            .order_by("scheduled_date", "number")
        )
        return self.annotate(
            next_cycle_on=Subquery(upcoming.values("scheduled_date")[:1]),
            next_cycle_number=Subquery(upcoming.values("number")[:1]),
        )

    def search(self, text: str) -> PatientQuerySet:
        """Patients whose MRN, given or family name contains every word of `text`,
        sorted by name without regard to case.

        On PostgreSQL each `icontains` (`UPPER(column::text) LIKE ...`) is served by a
        trigram index of that very expression (migration 0019, `pg_trgm`), not by
        reading every patient. The sort is on the same upper-cased names so that no
        index gives that order: sorted by the names as stored, PostgreSQL walked the
        name index from "A", reading every patient before a family name late in the
        alphabet (it takes the matches to be spread evenly through it).
        """
        words = text.split()
        if not words:
            return self
        qs = self
        for word in words:
            qs = qs.filter(
                Q(mrn__icontains=word)
                | Q(given_name__icontains=word)
                | Q(family_name__icontains=word)
            )
        return qs.order_by(Upper("family_name"), Upper("given_name"), "mrn")


class CareTeam(models.Model):
    """A clinic or site's team: its users see and act on its patients only.

    While at most one team exists every user with a role sees every patient
    (`access._scope`); from the second team on, a user sees the patients of
    their teams. Staff manage teams in admin, or `manage.py addteam`.
    """

    name = models.CharField(
        max_length=100,
        unique=True,
        error_messages={"unique": "A care team with this name already exists."},
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="care_teams"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="careteam_name_not_blank")
        ]

    def __str__(self) -> str:
        return self.name


class Patient(Versioned):
    Sex = Sex
    CancerType = CancerType

    mrn = models.CharField(
        "MRN",
        max_length=32,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
                "Use letters, digits and . _ / - only, starting with a letter or digit.",
            )
        ],
        error_messages={"unique": "A patient with this MRN already exists."},
    )
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices)
    cancer_type = models.CharField(max_length=20, choices=CancerType.choices)
    diagnosed_on = models.DateField("metastatic diagnosis on", null=True, blank=True)
    oncologist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="patients",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Bumped by every service that changes what the patient's chart shows; charts
    # are cached under it, so every app server agrees when a chart is stale.
    data_version = models.PositiveIntegerField(default=0, editable=False)
    # Who may see the patient (`access._scope`); set through `services` only, so each
    # change is a row of the history with who, when and why.
    care_teams = models.ManyToManyField(CareTeam, blank=True, related_name="patients")

    history = HistoricalRecords(excluded_fields=["data_version"], m2m_fields=[care_teams])
    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["family_name", "given_name", "mrn"]
        constraints = [
            models.CheckConstraint(condition=Q(sex__in=Sex.values), name="patient_sex_valid"),
            models.CheckConstraint(
                condition=Q(cancer_type__in=CancerType.values),
                name="patient_cancer_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(diagnosed_on__isnull=True) | Q(diagnosed_on__gte=F("birth_date")),
                name="patient_diagnosed_after_birth",
            ),
            models.CheckConstraint(condition=~Q(mrn=""), name="patient_mrn_not_blank"),
        ]
        indexes = [
            # Used by the patient search.
            models.Index(fields=["family_name", "given_name"], name="patient_name"),
        ]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name} ({self.mrn})"

    def clean(self) -> None:
        if self.diagnosed_on and self.birth_date and self.diagnosed_on < self.birth_date:
            raise ValidationError(
                {"diagnosed_on": "The diagnosis date cannot be before the birth date."}
            )

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class TherapyLine(models.Model):
    patient = models.ForeignKey(Patient, models.PROTECT, related_name="therapy_lines")
    line_number = models.PositiveSmallIntegerField(
        validators=[
            MinValueValidator(1, "The line number starts at 1."),
            MaxValueValidator(99, "The line number is at most 99."),
        ]
    )
    regimen = models.CharField(max_length=200)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    cycle_length_days = models.PositiveSmallIntegerField(
        "cycle length (days)",
        validators=[
            MinValueValidator(1, "A cycle lasts at least 1 day."),
            MaxValueValidator(365, "A cycle lasts at most 365 days."),
        ],
    )
    contains_doxorubicin = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "line_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "line_number"],
                name="therapy_line_number_unique_per_patient",
                violation_error_message="This patient already has a therapy line with this number.",
            ),
            models.CheckConstraint(condition=Q(line_number__gte=1), name="therapy_line_number_min"),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="therapy_line_ends_on_or_after_start",
            ),
            models.CheckConstraint(
                condition=Q(cycle_length_days__gte=1) & Q(cycle_length_days__lte=365),
                name="therapy_line_cycle_length_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Line {self.line_number}: {self.regimen}"

    def clean(self) -> None:
        if self.end_date and self.start_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The line cannot end before it starts."})


class TreatmentCycleQuerySet(models.QuerySet["TreatmentCycle"]):
    def upcoming(self) -> TreatmentCycleQuerySet:
        """Planned or delayed cycles: those the rules flag and the worklist lists."""
        return self.filter(status__in=_UPCOMING)


class TreatmentCycle(Versioned):
    Status = CycleStatus

    therapy_line = models.ForeignKey(TherapyLine, models.PROTECT, related_name="cycles")
    number = models.PositiveSmallIntegerField(
        validators=[
            MinValueValidator(1, "Cycles are numbered from 1."),
            MaxValueValidator(999, "Cycles are numbered up to 999."),
        ]
    )
    scheduled_date = models.DateField("day 1")
    # Day 1 as first planned (spec section 4): set on creation, kept when the cycle is
    # delayed (and by the later cycles a delay moves along), moved with `scheduled_date`
    # only when a planned cycle's date is corrected. Written by the services alone.
    first_scheduled_date = models.DateField("day 1 as first planned", editable=False)
    given_date = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=CycleStatus.choices, default=CycleStatus.PLANNED
    )
    status_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The worklist's sort key, `rules.cycle_rank`, on one day of each phase of the
    # cycle (`rules.phase_days`): before its draw window opens, from then to day 1,
    # after day 1. The state changes only between phases, so the database sorts by
    # the phase `today` is in (`assessment.worklist`). Kept current by
    # `services._touch` in the same transaction as every write the rules read,
    # acknowledgements included. Derived data, like `Patient.data_version`: not in
    # the change history. 0 until computed, so a cycle a bulk path forgot comes
    # first, never sinks out of sight.
    rank_before_window = models.PositiveSmallIntegerField(default=0, editable=False)
    rank_in_window = models.PositiveSmallIntegerField(default=0, editable=False)
    rank_after_day_1 = models.PositiveSmallIntegerField(default=0, editable=False)
    window_opens = models.DateField(null=True, editable=False)

    history = HistoricalRecords(
        excluded_fields=["rank_before_window", "rank_in_window", "rank_after_day_1", "window_opens"]
    )
    objects = TreatmentCycleQuerySet.as_manager()

    class Meta:
        ordering = ["therapy_line", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["therapy_line", "number"],
                name="cycle_number_unique_per_line",
                violation_error_message="This therapy line already has a cycle with this number.",
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="cycle_number_min"),
            models.CheckConstraint(
                condition=Q(status__in=CycleStatus.values),
                name="cycle_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[CycleStatus.PLANNED, CycleStatus.GIVEN])
                | ~Q(status_reason=""),
                name="cycle_reason_when_delayed_or_cancelled",
            ),
        ]
        indexes = [
            # Used by the worklist: upcoming cycles in a date range.
            models.Index(fields=["scheduled_date", "status"], name="cycle_scheduled_status"),
            # The paged worklist: upcoming cycles in a date range.
            models.Index(
                fields=["scheduled_date"],
                condition=Q(status__in=_UPCOMING),
                name="cycle_upcoming_day_1",
            ),
        ]

    def __str__(self) -> str:
        return f"C{self.number} of {self.therapy_line}"

    def clean(self) -> None:
        needs_reason = self.status in (CycleStatus.DELAYED, CycleStatus.CANCELLED)
        if needs_reason and not (self.status_reason or "").strip():
            raise ValidationError(
                {"status_reason": f"Give a reason why the cycle is {self.status}."}
            )


class CTCDrawQuerySet(models.QuerySet["CTCDraw"]):
    def for_patient(self, patient: Patient) -> CTCDrawQuerySet:
        return self.filter(patient=patient).order_by("drawn_at", "id")

    def valid(self) -> CTCDrawQuerySet:
        """Draws that count: not marked as entered in error."""
        return self.filter(entered_in_error=False)

    def with_accessions(self, accessions: Iterable[str]) -> CTCDrawQuerySet:
        """The draws holding any of these accession numbers, found through their index.

        The unique index on accessions is partial (`accession <> ''`). PostgreSQL
        proves that an `IN` list implies that condition only for lists of up to 100
        values; past that it scanned every draw on record for each batch of an
        import. Stating the condition lets the index answer a list of any length.
        """
        return self.filter(~Q(accession=""), accession__in=[a for a in accessions if a])


class CTCDraw(Versioned):
    """One CellSearch blood sample and, when resulted, its count."""

    Status = DrawStatus

    patient = models.ForeignKey(Patient, models.PROTECT, related_name="draws")
    drawn_at = models.DateTimeField()
    blood_volume_ml = models.DecimalField(
        "blood volume (mL)",
        max_digits=5,
        decimal_places=2,
        default=STANDARD_VOLUME_ML,
        validators=[
            MinValueValidator(MIN_ENTRY_VOLUME_ML, VOLUME_OUT_OF_RANGE),
            MaxValueValidator(MAX_ENTRY_VOLUME_ML, VOLUME_OUT_OF_RANGE),
        ],
    )
    status = models.CharField(
        max_length=10, choices=DrawStatus.choices, default=DrawStatus.RESULTED
    )
    ctc_count = models.PositiveIntegerField(
        "CTC count (cells in the sample)",
        null=True,
        blank=True,
        validators=[
            MinValueValidator(0, "The count cannot be negative."),
            # CellSearch reports up to tens of thousands; beyond this is a typing error.
            MaxValueValidator(MAX_CTC_COUNT, "A count above 1,000,000 cells is not plausible."),
        ],
    )
    # ">" when the lab reported only a lower bound (">1000", "too numerous to count"):
    # `ctc_count` then holds the bound.
    count_qualifier = models.CharField(
        max_length=1, blank=True, default=CountQualifier.EXACT, choices=CountQualifier.choices
    )
    accession = models.CharField(max_length=64, blank=True)
    comment = models.TextField(blank=True)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    entered_at = models.DateTimeField(default=timezone.now, editable=False)
    # A wrong draw is never deleted: it is marked, kept, and left out of every rule.
    entered_in_error = models.BooleanField(default=False)
    error_reason = models.TextField(blank=True)
    # When the software recorded the tube as resulted: its entry, or the change from
    # pending to resulted. Results to review are listed oldest first by it, and a high
    # flag is escalated `CTC_ESCALATE_AFTER_HOURS` after it.
    resulted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Results to review (derived, kept current with the ranks; not in the history):
    # on the tube that stands for a result needing review (a sample's first tube, or
    # a lone not-evaluable tube), 0 high or 1 review; None on every other tube.
    review_rank = models.PositiveSmallIntegerField(null=True, editable=False)
    review_acknowledged = models.BooleanField(default=False, editable=False)
    # When a high flag of this result was escalated (once; `manage.py escalate_flags`).
    escalated_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords(
        excluded_fields=["review_rank", "review_acknowledged", "escalated_at"]
    )
    objects = CTCDrawQuerySet.as_manager()

    class Meta:
        verbose_name = "CTC draw"
        ordering = ["patient", "drawn_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["accession"],
                condition=~Q(accession=""),
                name="draw_accession_unique_when_given",
                violation_error_message="A draw with this accession number already exists.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=DrawStatus.values),
                name="draw_status_valid",
            ),
            models.CheckConstraint(
                condition=(Q(status=DrawStatus.RESULTED) & Q(ctc_count__isnull=False))
                | (~Q(status=DrawStatus.RESULTED) & Q(ctc_count__isnull=True)),
                name="draw_count_only_when_resulted",
            ),
            models.CheckConstraint(condition=Q(ctc_count__gte=0), name="draw_count_not_negative"),
            models.CheckConstraint(
                condition=Q(count_qualifier__in=CountQualifier.values),
                name="draw_count_qualifier_valid",
            ),
            models.CheckConstraint(
                condition=Q(count_qualifier=CountQualifier.EXACT) | Q(status=DrawStatus.RESULTED),
                name="draw_count_qualifier_only_when_resulted",
            ),
            models.CheckConstraint(
                condition=Q(entered_in_error=False) | ~Q(error_reason=""),
                name="draw_error_needs_reason",
            ),
            models.CheckConstraint(
                condition=Q(blood_volume_ml__gt=0) & Q(blood_volume_ml__lte=MAX_STORED_VOLUME_ML),
                name="draw_volume_range",
            ),
        ]
        indexes = [
            # Used by every per-patient series and "latest draw per patient".
            models.Index(fields=["patient", "drawn_at"], name="draw_patient_drawn_at"),
            # Results to review: the unacknowledged, most severe first, then oldest first by
            # when each reached the record (assessment.results.REPORTED_AT): the list's
            # ORDER BY exactly, so a page is read from the index, not sorted from them all.
            models.Index(
                F("review_rank"),
                Coalesce(F("resulted_at"), F("entered_at")),
                F("id"),
                condition=Q(review_rank__isnull=False, review_acknowledged=False),
                name="draw_results_to_review_at",
            ),
        ]

    def __str__(self) -> str:
        when = timezone.localtime(self.drawn_at).strftime("%Y-%m-%d %H:%M")
        if self.status == DrawStatus.RESULTED:
            count = f"{self.count_qualifier} {self.ctc_count}".lstrip()
            return f"{count} CTC in {self.blood_volume_ml} mL on {when}"
        return f"{self.get_status_display()} draw on {when}"

    def clean(self) -> None:
        if self.entered_in_error and not (self.error_reason or "").strip():
            raise ValidationError({"error_reason": "Say why the draw was entered in error."})
        if self.status not in DrawStatus.values:
            return  # clean_fields() already reports the unknown status
        if self.status == DrawStatus.RESULTED and self.ctc_count is None:
            raise ValidationError({"ctc_count": "A resulted draw needs a count (0 or more)."})
        if self.status != DrawStatus.RESULTED and self.ctc_count is not None:
            raise ValidationError(
                {"ctc_count": f"A {self.status} draw has no count; leave the count empty."}
            )
        if self.status != DrawStatus.RESULTED and self.count_qualifier:
            raise ValidationError(
                {
                    "count_qualifier": f"A {self.status} draw has no count, so no "
                    "'more than' either; leave it unset."
                }
            )


def censored_bound_error(bound: int, volume_ml: Decimal, cancer_type: str) -> str | None:
    """Why "more than `bound` cells in `volume_ml` mL" cannot be stored for this cancer type.

    A censored count is always unfavourable (spec section 2), which is only true
    when its bound, scaled to 7.5 mL on the tube's own volume, is at or above the
    cut-off (inclusive): `bound * 7.5 / volume >= cutoff`, in exact decimals. A
    cancer type with no cut-off classifies nothing, so any bound is kept. None
    when the bound can be stored (or the volume is no volume: refused elsewhere).
    """
    cutoff = rules.cutoff_for(cancer_type, settings.CTC_CUTOFFS)
    volume = Decimal(volume_ml)
    if cutoff is None or not volume.is_finite() or volume <= 0:
        return None
    rate = Decimal(bound) * STANDARD_VOLUME_ML / volume
    if rate >= cutoff:
        return None
    least = math.ceil(cutoff * volume / STANDARD_VOLUME_ML)
    return (
        "A lower bound below the cut-off cannot be classified: more than "
        f"{bound} cells in {wording.volume_text(volume)} mL is more than "
        f"{wording.format_rate(float(rate))} CTC per 7.5 mL, below the {cancer_type} cut-off "
        f"of {cutoff}. Enter the exact count, or a bound of at least {least} cells."
    )


class ImagingAssessment(Versioned):
    Modality = Modality
    Response = RecistResponse

    patient = models.ForeignKey(Patient, models.PROTECT, related_name="imaging")
    performed_on = models.DateField()
    modality = models.CharField(max_length=10, choices=Modality.choices)
    response = models.CharField("RECIST 1.1 response", max_length=2, choices=RecistResponse.choices)
    note = models.TextField(blank=True)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    entered_at = models.DateTimeField(default=timezone.now, editable=False)
    # Wrong imaging is never deleted: it is marked, kept, and left out of the chart and report.
    entered_in_error = models.BooleanField(default=False)
    error_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "performed_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(entered_in_error=False) | ~Q(error_reason=""),
                name="imaging_error_needs_reason",
            ),
            models.CheckConstraint(
                condition=Q(modality__in=Modality.values),
                name="imaging_modality_valid",
            ),
            models.CheckConstraint(
                condition=Q(response__in=RecistResponse.values),
                name="imaging_response_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_modality_display()} on {self.performed_on}: {self.response}"


class Acknowledgement(models.Model):
    """A nurse or oncologist has seen flags and says what they did.

    Of a cycle's flags (`cycle`) or of one result's (`draw`: the first tube of the
    sample, or a lone not-evaluable tube). It is a record, never a switch: the flags
    stay on the worklist, the results list and the patient page, marked as
    acknowledged. `flags` keeps the flags as they were, each with the sample it came
    from (`source`), so that a later result, whose flags are new, is not covered.
    """

    # Whose cycle or result: the cycle's line's patient, or the draw's (checked by
    # `clean`). A page finds its patients' acknowledgements by this column alone, through
    # its index, whatever the planner's statistics say (see the loader).
    patient = models.ForeignKey(
        Patient, models.PROTECT, related_name="acknowledgements", editable=False
    )
    cycle = models.ForeignKey(
        TreatmentCycle, models.PROTECT, related_name="acknowledgements", null=True, blank=True
    )
    draw = models.ForeignKey(
        "CTCDraw", models.PROTECT, related_name="acknowledgements", null=True, blank=True
    )
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    acknowledged_at = models.DateTimeField(default=timezone.now, editable=False)
    note = models.TextField()
    flags = models.JSONField(default=list, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["acknowledged_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(note=""), name="acknowledgement_note_required"),
            models.CheckConstraint(
                condition=Q(cycle__isnull=False, draw__isnull=True)
                | Q(cycle__isnull=True, draw__isnull=False),
                name="acknowledgement_of_cycle_or_result",
            ),
        ]

    def __str__(self) -> str:
        return f"Acknowledged by {self.acknowledged_by} at {self.acknowledged_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        """The acknowledgement is filed on the patient whose cycle or result it covers."""
        if self.patient_id is None:
            return  # refused as a missing field
        owners: list[int] = []
        if self.cycle_id is not None:
            owners = list(
                TreatmentCycle.objects.filter(pk=self.cycle_id).values_list(
                    "therapy_line__patient_id", flat=True
                )
            )
        elif self.draw_id is not None:
            owners = list(
                CTCDraw.objects.filter(pk=self.draw_id).values_list("patient_id", flat=True)
            )
        else:
            return  # refused by the constraint: of a cycle or of a result
        if self.patient_id not in owners:
            raise ValidationError({"patient": [ACKNOWLEDGED_ON_ANOTHER_PATIENT]})


# --- the access log ------------------------------------------------------------------


class AccessAction(models.TextChoices):
    """What an access event records: a read of patient data, or a sign-in event."""

    VIEW = "view", "Patient record viewed"
    CHART = "chart", "Chart"
    REPORT = "report", "Printable report"
    EXPORT = "export", "Export"
    # A message from another system (HL7, CSV) processed: which patients it touched.
    IMPORT = "import", "Import"
    API_READ = "api_read", "API read"
    WORKLIST = "worklist", "Worklist"
    RESULTS = "results", "Results to review"
    # High flags escalated to an oncologist by e-mail (`manage.py escalate_flags`).
    ESCALATION = "escalation", "Escalation"
    # Results from before go-live acknowledged at once (`manage.py acknowledge_history`).
    BULK_ACKNOWLEDGEMENT = "bulk_acknowledgement", "Results acknowledged in bulk"
    PATIENT_LIST = "patient_list", "Patient list"
    AUDIT_REPORT = "audit_report", "Audit report"
    # The replicate-variation estimate: every patient's duplicate tubes, shown as one figure.
    REPLICATE_VARIATION = "replicate_variation", "Replicate variation"
    LOGIN = "login", "Sign-in"
    LOGOUT = "logout", "Sign-out"
    LOGIN_FAILED = "login_failed", "Failed sign-in"
    PERMISSION_DENIED = "permission_denied", "Permission denied"
    LOCKOUT = "lockout", "Account locked out"
    # Credentials: an API token issued or revoked; a user's two-factor device removed.
    TOKEN_ISSUED = "token_issued", "API token issued"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    MFA_RESET = "mfa_reset", "Two-factor sign-in removed"
    MFA_ENROLMENT = "mfa_enrolment", "Two-factor enrolment code issued"


class AccessOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"


class AuditLogIsAppendOnly(Exception):
    """Raised on any attempt to change or delete an access event."""


_Row = TypeVar("_Row", bound=models.Model)


class _AppendOnlyQuerySet(models.QuerySet[_Row]):
    """The access log's QuerySets: reading only. Bulk changes raise instead of running."""

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("The access log is append-only: rows are never updated.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AuditLogIsAppendOnly("The access log is append-only: rows are never updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("The access log is append-only: rows are never deleted.")

    # Django's deletion collector calls this directly for fast deletes.
    def _raw_delete(self, using: str | None) -> int:
        raise AuditLogIsAppendOnly("The access log is append-only: rows are never deleted.")


class AccessEventQuerySet(_AppendOnlyQuerySet["AccessEvent"]):
    pass


class AccessEventPatientQuerySet(_AppendOnlyQuerySet["AccessEventPatient"]):
    pass


class _AppendOnlyRow(models.Model):
    """A row of the access log: inserted once, never updated or deleted through the ORM
    (the database's triggers refuse it too: migrations 0005 and 0025)."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("The access log is append-only: rows are never updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("The access log is append-only: rows are never deleted.")


class AccessEvent(_AppendOnlyRow):
    """One read of patient data, or one sign-in event, in an append-only, hash-chained log.

    Written only by `patients.audit.record()`, which computes `hash` over the
    row's fields and `prev_hash`, the hash of the row before it. Neither the
    model, its QuerySet nor (through triggers, see migration 0005) the
    database lets a row change or disappear. `target` says what was touched
    in words and ids only: never a patient's name or MRN.
    """

    Action = AccessAction
    Outcome = AccessOutcome

    at = models.DateTimeField("date and time (UTC)", default=timezone.now, editable=False)
    # Accounts are deactivated, never deleted, while the log refers to them.
    # The composite indexes below lead with these columns, so no separate index.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="access_events",
    )
    # The username at the time, or as typed for a failed sign-in.
    username = models.CharField(max_length=150, blank=True)
    patient = models.ForeignKey(
        Patient,
        models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="access_events",
    )
    action = models.CharField(max_length=20, choices=AccessAction.choices)
    target = models.TextField("what was touched", blank=True)
    outcome = models.CharField(
        max_length=10, choices=AccessOutcome.choices, default=AccessOutcome.SUCCESS
    )
    client_address = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField("previous event's hash", max_length=64)
    hash = models.CharField("hash (HMAC-SHA256)", max_length=64)
    # How `hash` was computed (patients/audit/chain.py): 2, keyed with the audit key;
    # empty for events written before the chain was keyed (plain SHA-256).
    chain_format = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    # The label of the audit key a keyed event was keyed with (`CTCTRACK_AUDIT_KEY_ID`);
    # empty for the key in use before keys had labels. Nullable, as `chain_format` is:
    # on SQLite a column with a default would rebuild the table and drop its triggers.
    key_id = models.CharField(max_length=40, null=True, blank=True, editable=False)  # noqa: DJ001

    objects = AccessEventQuerySet.as_manager()

    class Meta:
        verbose_name = "access event"
        constraints = [
            # Two writers that chained to the same row would fork the chain:
            # the database refuses the second, whatever the application does.
            models.UniqueConstraint(fields=["prev_hash"], name="access_event_chain_is_linear"),
            # `action` is checked by record(), not here: a new action must not make
            # the database re-check (or, on SQLite, rebuild) a log of millions of rows.
            models.CheckConstraint(
                condition=Q(outcome__in=AccessOutcome.values), name="access_event_outcome_valid"
            ),
        ]
        indexes = [
            # Used by the audit report: a date range, one patient's or one user's events.
            models.Index(fields=["at"], name="access_event_at"),
            models.Index(fields=["patient", "at"], name="access_event_patient_at"),
            models.Index(fields=["user", "at"], name="access_event_user_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and not self.hash:
            raise ValueError("Write access events with patients.audit.record(), which chains them.")
        super().save(*args, **kwargs)


class AccessEventPatient(_AppendOnlyRow):
    """A patient an access event's list showed (a list's page, an export, a message, an
    escalation; one row even when it showed one): what the audit report finds a
    patient's reads among others by.

    The event's `target` lists them too, in words; these rows let the report filter
    by patient through an index. Written with the event, by `patients.audit`, and
    covered by its hash (chain format 3), so a row removed or added breaks the chain.
    Append-only in the database like the events (migration 0025).
    """

    event = models.ForeignKey(AccessEvent, models.PROTECT, related_name="listed_patients")
    patient = models.ForeignKey(Patient, models.PROTECT, db_index=False, related_name="+")

    objects = AccessEventPatientQuerySet.as_manager()

    class Meta:
        verbose_name = "patient an access event showed"
        constraints = [
            # Also the report's index: one patient's events, by event.
            models.UniqueConstraint(fields=["patient", "event"], name="access_event_patient_once"),
        ]

    def __str__(self) -> str:
        return f"event #{self.event_id}: patient {self.patient_id}"


class ApiToken(models.Model):
    """A credential for the API, kept as a hash: its key is shown once, to its owner.

    Issued by `patients.accounts.api_tokens.issue` after both factors (the API's
    token endpoint, or the owner's account page in a signed-in session). It ends
    when it expires, when it is revoked (by its owner or by staff, who can revoke
    but never issue one for someone else), or when its owner's password changes by
    any means: `password_stamp` is a keyed digest of the password hash it was
    issued under.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens", editable=False
    )
    # The key's first characters: found by these, shown to tell tokens apart.
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    digest = models.CharField("key digest (SHA-256)", max_length=64, editable=False)
    name = models.CharField("what it is for", max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(editable=False)
    password_stamp = models.CharField(max_length=64, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    # Not stored: the request that issues or revokes the token, for the access log's
    # client address (set by `api_tokens.issue` / `revoke`; None from elsewhere).
    audit_request: Any = None

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'API token'})"


class MfaEnrolment(models.Model):
    """A one-time code that lets a user set up their first authenticator app.

    With `CTCTRACK_MFA_ENROLMENT_REQUIRED`, a password alone no longer lets someone
    enrol their own app in a user's place: staff issue a code (admin, Users, "Issue a
    two-factor enrolment code"), give it to the user out of band (in person, by
    phone), and the set-up page asks for it before it shows a secret. Kept as a
    hash, it expires (`CTCTRACK_MFA_ENROLMENT_HOURS`) and works once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="mfa_enrolments", editable=False
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="+", editable=False
    )
    issued_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "two-factor enrolment code"

    def __str__(self) -> str:
        return f"Enrolment code for user #{self.user_id}, issued {self.issued_at:%Y-%m-%d %H:%M}"
