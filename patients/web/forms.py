"""Forms for the clinicians' pages. They parse input; the services decide and save.

`apply_service_errors` copies a service's `ValidationError` onto the form, so
every message appears next to the field it names and nothing is saved.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils import timezone

from ctctrack.forms import DateInput, DateTimeLocalInput
from patients.messages import NOTE_REQUIRED
from patients.models import (
    MAX_ENTRY_VOLUME_ML,
    MIN_ENTRY_VOLUME_ML,
    STANDARD_VOLUME_ML,
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


def apply_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's errors next to their fields (unknown fields at the top)."""
    for field, messages in error.message_dict.items():
        target = field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)


class ServiceForm(forms.ModelForm):
    """A ModelForm for parsing only: the services run the model's validation.

    The services see what the form cannot (the patient, other rows, the clock)
    and word every message for clinicians, so the form skips Django's own
    model validation rather than report the same problem twice.
    """

    def _post_clean(self) -> None:
        pass  # no construct_instance either: the views pass cleaned_data to a service

    def validate_unique(self) -> None:
        pass


class VersionedForm(ServiceForm):
    """An edit carries the version it started from, so a concurrent edit is caught."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False)


def oncologist_choices() -> forms.ModelChoiceField[User]:
    return forms.ModelChoiceField(
        queryset=get_user_model()
        .objects.filter(groups__name=ONCOLOGIST, is_active=True)
        .order_by("username"),
        required=False,
        empty_label="(none)",
    )


class PatientForm(VersionedForm):
    reason = forms.CharField(
        required=False,
        max_length=CHANGE_REASON_MAX_LENGTH,
        help_text="Optional: why this was changed.",
    )

    class Meta:
        model = Patient
        fields = [
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "cancer_type",
            "diagnosed_on",
            "oncologist",
            "active",
        ]
        widgets = {"birth_date": DateInput(), "diagnosed_on": DateInput()}
        labels = {"diagnosed_on": "Metastatic diagnosis on"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["oncologist"] = oncologist_choices()
        self.fields["oncologist"].initial = getattr(self.instance, "oncologist_id", None)


class TherapyLineForm(ServiceForm):
    line_number = forms.IntegerField(
        required=False, min_value=1, help_text="Leave empty for the next number."
    )

    class Meta:
        model = TherapyLine
        fields = [
            "line_number",
            "regimen",
            "start_date",
            "end_date",
            "cycle_length_days",
            "contains_doxorubicin",
        ]
        widgets = {"start_date": DateInput(), "end_date": DateInput()}
        help_texts = {"cycle_length_days": "Usually 14, 21 or 28."}


class CycleForm(VersionedForm):
    move_later_cycles = forms.BooleanField(
        required=False,
        label="Also move the later planned cycles of this line by the same number of days",
    )

    class Meta:
        model = TreatmentCycle
        fields = ["number", "scheduled_date", "status", "given_date", "status_reason"]
        widgets = {
            "scheduled_date": DateInput(),
            "given_date": DateInput(),
            "status_reason": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {"status_reason": "Reason (required when delayed or cancelled)"}


class CountField(forms.IntegerField):
    """A number of cells, or a lower bound typed with its sign: ">1000" reads 1000.

    The sign itself is read by `DrawForm`, which ticks "more than" for it.
    """

    widget = forms.TextInput  # a number input would not take the ">"
    default_error_messages = {
        "invalid": "Enter the count as a whole number of cells (0 or more), "
        "or a lower bound such as >1000."
    }

    def to_python(self, value: Any) -> int | None:
        if isinstance(value, str) and _typed_bound(value):
            value = value.strip()[1:].strip() or "not a number"  # ">" alone: invalid
        return super().to_python(value)


def _typed_bound(text: Any) -> bool:
    return isinstance(text, str) and text.strip().startswith(CountQualifier.MORE_THAN)


class MoreThanField(forms.BooleanField):
    """The "more than" box: ticked, the count is a lower bound. Cleans to the qualifier."""

    def prepare_value(self, value: Any) -> bool:
        return bool(value)  # the stored qualifier (">" or "") as the box shows it

    def clean(self, value: Any) -> str:
        ticked = super().clean(value)
        return CountQualifier.MORE_THAN if ticked else CountQualifier.EXACT


class DrawForm(VersionedForm):
    ctc_count = CountField(
        required=False,
        min_value=0,
        label="CTC count (cells counted in the sample)",
        help_text="Only for resulted draws; leave empty for rejected, failed or pending.",
    )
    count_qualifier = MoreThanField(
        required=False,
        label="More than: the count is a lower bound",
        help_text="Tick when the lab reported only a lower bound, such as >1000 or too "
        "numerous to count above a stated number; the count is then that bound. "
        "Typing >1000 in the count does the same.",
    )
    reason = forms.CharField(
        required=False,
        max_length=CHANGE_REASON_MAX_LENGTH,
        help_text="Required when changing a saved draw.",
    )

    class Meta:
        model = CTCDraw
        fields = [
            "drawn_at",
            "blood_volume_ml",
            "status",
            "ctc_count",
            "count_qualifier",
            "accession",
            "comment",
        ]
        widgets = {
            "drawn_at": DateTimeLocalInput(),
            "comment": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {"drawn_at": "Drawn at (local time)"}
        help_texts = {
            "blood_volume_ml": f"Standard CellSearch volume: {STANDARD_VOLUME_ML} mL "
            f"(from {MIN_ENTRY_VOLUME_ML} to {MAX_ENTRY_VOLUME_ML} mL).",
        }

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        drawn_at = self.fields["drawn_at"]
        assert isinstance(drawn_at, forms.DateTimeField)  # the model's DateTimeField
        drawn_at.input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        self.fields["blood_volume_ml"].widget.attrs.update(
            {"step": "0.01", "min": str(MIN_ENTRY_VOLUME_ML), "max": str(MAX_ENTRY_VOLUME_ML)}
        )
        if editing:
            self.fields["reason"].required = True
        if self.is_bound and _typed_bound(self.data.get(self.add_prefix("ctc_count"))):
            # ">1000" typed in the count ticks "more than", as if the box had been ticked:
            # the edit then sees the qualifier change, and a form shown again shows it.
            data = self.data.copy() if isinstance(self.data, QueryDict) else dict(self.data)
            data[self.add_prefix("count_qualifier")] = "on"
            self.data = data

    def clean_drawn_at(self) -> datetime:
        value: datetime = self.cleaned_data["drawn_at"]
        return value if timezone.is_aware(value) else timezone.make_aware(value)


class EnteredInErrorForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Why was this draw entered in error?",
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)


class ImagingForm(ServiceForm):
    class Meta:
        model = ImagingAssessment
        fields = ["performed_on", "modality", "response", "note"]
        widgets = {"performed_on": DateInput(), "note": forms.Textarea(attrs={"rows": 2})}


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        max_length=2000,
        label="Note",
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": NOTE_REQUIRED},
    )


class OncologistByName(forms.ModelChoiceField):
    """An oncologist to choose, by full name (the username when there is none)."""

    def label_from_instance(self, obj: User) -> str:
        return obj.get_full_name() or obj.get_username()


class WorklistFilterForm(forms.Form):
    start = forms.DateField(required=False, label="From", widget=DateInput())
    days = forms.IntegerField(required=False, min_value=1, max_value=60, label="Days")
    flagged = forms.BooleanField(required=False, label="Flagged only")
    unacknowledged = forms.BooleanField(required=False, label="Needs acknowledgement")
    oncologist: forms.ModelChoiceField[User] = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="All"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["oncologist"] = OncologistByName(
            oncologist_choices().queryset,
            required=False,
            label="Oncologist",
            empty_label="All oncologists",
        )

    def start_date(self, today: date) -> date:
        return (self.cleaned_data.get("start") if self.is_valid() else None) or today

    def day_count(self) -> int:
        return (self.cleaned_data.get("days") if self.is_valid() else None) or 7
