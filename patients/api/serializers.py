"""How the API reads and writes the clinical record (JSON API v1).

Serializers only parse and present. Saving goes through `patients.services`,
which applies every clinical rule; numeric ranges and uniqueness are checked
there (one message per field, in words a clinician understands), so the
serializer fields below deliberately carry no range validators of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from patients import rules
from patients.assessment import PatientSeries, series_for
from patients.messages import ERROR_REASON_REQUIRED, NOTE_REQUIRED
from patients.models import (
    Acknowledgement,
    CareTeam,
    CountQualifier,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.roles import ONCOLOGIST
from patients.services import CHANGE_REASON_MAX_LENGTH

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_MESSAGES: dict[type[serializers.Field], dict[str, str]] = {
    serializers.IntegerField: {"invalid": "Enter a whole number."},
    serializers.DecimalField: {
        "invalid": "Enter a number.",
        "max_decimal_places": "Use at most {max_decimal_places} decimal places.",
        "max_digits": "Enter a number of at most {max_digits} digits.",
        "max_whole_digits": "Enter a number of at most {max_whole_digits} digits before the "
        "decimal point.",
    },
    serializers.DateField: {
        "invalid": "Enter a date as YYYY-MM-DD.",
        "datetime": "Enter a date as YYYY-MM-DD, without a time.",
    },
    serializers.DateTimeField: {
        "invalid": "Enter a date and time in ISO 8601 with a time-zone offset, "
        "e.g. 2026-03-01T08:30:00+00:00.",
        "date": "Enter a date and a time, with a time-zone offset.",
    },
    serializers.BooleanField: {"invalid": "Use true or false."},
    serializers.CharField: {"blank": "This field cannot be blank."},
}


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that must carry its time-zone offset.

    A time without an offset is ambiguous (whose 08:30?), and a draw time is
    what every comparison and the pre-cycle window depend on, so it is refused
    rather than guessed.
    """

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("invalid")
        return super().to_internal_value(value)


class LenientChoiceField(serializers.ChoiceField):
    """Accepts a choice's value or label in any case, with spaces or hyphens.

    Lab systems send "PET-CT", "Bone scan" or "PD"; each maps to exactly one
    stored value, so accepting them loses nothing and guesses nothing.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error_messages["invalid_choice"] = (
            '"{input}" is not one of: ' + ", ".join(str(c) for c in self.choices) + "."
        )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            wanted = _normalise(data)
            for value, label in self.choices.items():
                if wanted in (_normalise(str(value)), _normalise(str(label))):
                    return value
            # The message quotes the input, and a lone surrogate cannot be sent as UTF-8.
            data = data.encode("utf-8", "backslashreplace").decode()
        return super().to_internal_value(data)


def _normalise(text: str) -> str:
    return text.strip().casefold().replace("-", "_").replace(" ", "_")


class ClinicalSerializer(serializers.ModelSerializer):
    """Clear messages on every field; uniqueness is left to the services."""

    serializer_choice_field = LenientChoiceField

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            for kind, messages in _MESSAGES.items():
                if isinstance(field, kind):
                    field.error_messages.update(messages)
            field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
        return fields

    def get_validators(self) -> list[Any]:
        return []  # uniqueness (with clinical wording) is checked by the services


COUNT_QUALIFIER_CHOICE = (
    'Use ">" when ctc_count is a lower bound (the lab reported more than that many cells, '
    'such as >1000), or "" for an exact count.'
)

# One message for every refusal, never quoting the id: the API must not tell a
# caller which user ids exist, nor which role or state a user is in.
NOT_AN_ONCOLOGIST = "Choose an active oncologist."


class PatientSerializer(ClinicalSerializer):
    oncologist = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(groups__name=ONCOLOGIST, is_active=True),
        allow_null=True,
        required=False,
        error_messages={
            "does_not_exist": NOT_AN_ONCOLOGIST,
            "incorrect_type": NOT_AN_ONCOLOGIST,
            "invalid": NOT_AN_ONCOLOGIST,
        },
    )
    # Team names; a user may only add or remove teams they belong to (staff any): the
    # service says so, naming this field. Left out on a new patient: the creator's teams.
    care_teams = serializers.SlugRelatedField(
        many=True,
        slug_field="name",
        queryset=CareTeam.objects.all(),
        required=False,
        error_messages={"does_not_exist": "No care team named {value}."},
    )
    cutoff = serializers.SerializerMethodField()
    version = serializers.IntegerField(required=False, help_text="Optimistic lock on edits.")
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=CHANGE_REASON_MAX_LENGTH,
    )

    class Meta:
        model = Patient
        fields = [
            "id",
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "cancer_type",
            "diagnosed_on",
            "oncologist",
            "active",
            "care_teams",
            "cutoff",
            "version",
            "reason",
        ]

    def get_cutoff(self, patient: Patient) -> int | None:
        return settings.CTC_CUTOFFS.get(patient.cancer_type)


class TherapyLineSerializer(ClinicalSerializer):
    line_number = serializers.IntegerField(required=False)
    cycle_length_days = serializers.IntegerField()

    class Meta:
        model = TherapyLine
        fields = [
            "id",
            "patient",
            "line_number",
            "regimen",
            "start_date",
            "end_date",
            "cycle_length_days",
            "contains_doxorubicin",
        ]
        read_only_fields = ["patient"]


class CycleSerializer(ClinicalSerializer):
    number = serializers.IntegerField()
    version = serializers.IntegerField(required=False)
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=CHANGE_REASON_MAX_LENGTH,
    )

    class Meta:
        model = TreatmentCycle
        fields = [
            "id",
            "therapy_line",
            "number",
            "scheduled_date",
            "first_scheduled_date",  # read only: set and kept by the services
            "given_date",
            "status",
            "status_reason",
            "version",
            "reason",
        ]
        read_only_fields = ["therapy_line"]


def flag_data(flag: rules.Flag) -> dict[str, str]:
    return {"code": str(flag.code), "severity": str(flag.severity), "message": flag.message}


def draw_time(moment: datetime | None) -> str | None:
    return serializers.DateTimeField().to_representation(moment) if moment else None


def acknowledgement_data(ack: Acknowledgement) -> dict[str, Any]:
    return {
        "id": ack.pk,
        "cycle": ack.cycle_id,
        "draw": ack.draw_id,
        "acknowledged_by": ack.acknowledged_by.get_username(),
        "acknowledged_at": draw_time(ack.acknowledged_at),
        "note": ack.note,
    }


def give_series(serializer: serializers.BaseSerializer[Any], *series: PatientSeries) -> None:
    """Hand a draw serializer (and its list's every row) the assessed series to show."""
    # DRF's context is the dict the serializer was given (or its own); its stubs type it
    # as a read-only Mapping since 3.17 (typeddjango/djangorestframework-stubs#946).
    known = serializer.context.setdefault("series", {})  # type: ignore[attr-defined]
    known.update({s.patient.pk: s for s in series})


def series_context(request: Any, *series: PatientSeries) -> dict[str, Any]:
    return {"request": request, "series": {s.patient.pk: s for s in series}}


VOLUME = serializers.DecimalField(max_digits=12, decimal_places=2)


def sample_data(found: rules.SampleAssessment) -> dict[str, Any]:
    """A sample (the tubes of one venepuncture, pooled), as the API shows it."""
    sample = found.sample
    return {
        "draw_ids": [tube.id for tube in sample.tubes],
        "count": sample.count,
        "count_qualifier": ">" if sample.censored else "",
        "volume_ml": VOLUME.to_representation(sample.volume_ml),
        "rate_per_7_5_ml": found.rate_per_7_5_ml,
        "ci95": list(found.ci95),
    }


class DrawSerializer(ClinicalSerializer):
    """A draw (a tube) with what the rules say about its sample (computed on read).

    The view passes the patients' assessed series in `context["series"]`
    (patient id -> `PatientSeries`) so a list costs no extra queries; a lone
    draw is assessed against its patient's series on demand.
    """

    drawn_at = AwareDateTimeField()
    blood_volume_ml = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    ctc_count = serializers.IntegerField(required=False, allow_null=True)
    # ">" with `ctc_count` as the bound: a censored count such as ">1000".
    count_qualifier = serializers.ChoiceField(
        choices=CountQualifier.choices,
        required=False,
        allow_blank=True,
        error_messages={"invalid_choice": COUNT_QUALIFIER_CHOICE},
    )
    accession = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=64
    )
    comment = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    entered_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    version = serializers.IntegerField(required=False)
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=CHANGE_REASON_MAX_LENGTH,
    )

    class Meta:
        model = CTCDraw
        fields = [
            "id",
            "patient",
            "drawn_at",
            "blood_volume_ml",
            "status",
            "ctc_count",
            "count_qualifier",
            "accession",
            "comment",
            "entered_by",
            "entered_at",
            "version",
            "reason",
            "entered_in_error",
            "error_reason",
        ]
        read_only_fields = ["patient", "entered_at", "entered_in_error", "error_reason"]

    def to_representation(self, draw: CTCDraw) -> dict[str, Any]:
        data = super().to_representation(draw)
        series = self._series(draw)
        found = None if draw.entered_in_error else series.by_draw_id.get(draw.pk)
        sample = found.sample if found else None
        data["rate_per_7_5_ml"] = found.rate_per_7_5_ml if found else None
        data["category"] = str(found.category) if found and found.category else None
        data["ci95"] = list(found.ci95) if found and found.ci95 else None
        data["p_at_or_above_cutoff"] = found.p_at_or_above_cutoff if found else None
        data["flags"] = [flag_data(f) for f in found.flags] if found else []
        data["sample"] = sample_data(sample) if sample else None
        data["needs_review"] = found.needs_review if found else False
        data["acknowledged"] = found is not None and series.result_acknowledged(found)
        data["acknowledgements"] = (
            [acknowledgement_data(a) for a in series.acknowledgements_of_result(found)]
            if found
            else []
        )
        return data

    def _series(self, draw: CTCDraw) -> PatientSeries:
        known = self.context.get("series") or {}
        if draw.patient_id not in known or (
            draw.pk not in known[draw.patient_id].by_draw_id and not draw.entered_in_error
        ):
            give_series(self, series_for(draw.patient))
            known = self.context["series"]
        return known[draw.patient_id]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for text_field in ("accession", "comment"):
            if text_field in attrs and attrs[text_field] is None:
                attrs[text_field] = ""
        return attrs


class ImagingSerializer(ClinicalSerializer):
    entered_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    version = serializers.IntegerField(required=False, help_text="Optimistic lock on edits.")
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=CHANGE_REASON_MAX_LENGTH,
    )

    class Meta:
        model = ImagingAssessment
        fields = [
            "id",
            "patient",
            "performed_on",
            "modality",
            "response",
            "note",
            "entered_by",
            "entered_at",
            "version",
            "reason",
            "entered_in_error",
            "error_reason",
        ]
        # Corrected with PATCH (version and reason), marked with .../entered-in-error/.
        read_only_fields = ["patient", "entered_at", "entered_in_error", "error_reason"]


class AcknowledgementSerializer(serializers.ModelSerializer):
    acknowledged_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    note = serializers.CharField(
        max_length=2000,
        error_messages={
            "blank": NOTE_REQUIRED,
            "required": NOTE_REQUIRED,
        },
    )

    class Meta:
        model = Acknowledgement
        fields = ["id", "cycle", "draw", "acknowledged_by", "acknowledged_at", "note", "flags"]
        read_only_fields = ["cycle", "draw", "acknowledged_at", "flags"]


class WorklistQuerySerializer(serializers.Serializer):
    """`?from=YYYY-MM-DD&days=N` (defaults: today, 7 days)."""

    days = serializers.IntegerField(
        required=False,
        default=7,
        min_value=1,
        max_value=366,
        error_messages={"invalid": "Enter a whole number of days."},
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "from" is a Python keyword, so it cannot be declared as a class attribute.
        fields["from"] = serializers.DateField(
            required=False, error_messages={"invalid": "Enter a date as YYYY-MM-DD."}
        )
        return fields


class EnteredInErrorSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=1000,
        error_messages={
            "blank": ERROR_REASON_REQUIRED,
            "required": ERROR_REASON_REQUIRED,
        },
    )
    version = serializers.IntegerField(required=False)
