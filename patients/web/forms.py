"""Forms for the clinicians' pages. They parse input; the services decide and save.

`apply_service_errors` copies a service's `ValidationError` onto the form, so
every message appears next to the field it names and nothing is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import QueryDict
from django.utils import timezone

from ctctrack.forms import DateInput, DateTimeLocalInput
from patients.messages import NOTE_REQUIRED
from patients.models import (
    MAX_ENTRY_VOLUME_ML,
    MIN_ENTRY_VOLUME_ML,
    STANDARD_VOLUME_ML,
    CareTeam,
    CountQualifier,
    CTCDraw,
    CycleStatus,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.roles import ONCOLOGIST
from patients.services import CHANGE_REASON_MAX_LENGTH, MAX_CYCLES_PLANNED_AT_ONCE
from patients.web import dates

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def apply_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's errors next to their fields (unknown fields at the top)."""
    for field, messages in error.message_dict.items():
        target = field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)


@dataclass(frozen=True)
class SummaryItem:
    """One problem in a form's error summary: the field's label and id (to link to it)."""

    label: str
    field_id: str
    message: str


def error_summary(form: forms.Form) -> list[SummaryItem]:
    """Every problem, for the summary at the top of the page: the form-wide ones, then each
    field's in the form's order (those also show next to their field)."""
    items = [SummaryItem("", "", str(message)) for message in form.non_field_errors()]
    for name, field in form.fields.items():
        if name in form.errors and not field.widget.is_hidden:
            bound = form[name]
            for message in form.errors[name]:
                items.append(SummaryItem(str(bound.label), bound.id_for_label, str(message)))
    return items


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

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["oncologist"] = oncologist_choices()
        self.fields["oncologist"].initial = getattr(self.instance, "oncologist_id", None)
        if CareTeam.objects.count() > 1:
            # Staff choose among every team; others among their own and those the patient
            # is in (the service refuses adding or removing a team the user is not in,
            # naming this field). A new patient left without a choice joins the teams of
            # whoever registers them.
            offered = CareTeam.objects.all()
            if not getattr(user, "is_staff", False):
                offered_if = Q(members=user) if getattr(user, "pk", None) else Q(pk__in=[])
                if self.instance.pk is not None:
                    offered_if |= Q(patients=self.instance.pk)
                offered = offered.filter(offered_if).distinct()
            self.fields["care_teams"] = forms.ModelMultipleChoiceField(
                offered,
                required=False,
                widget=forms.CheckboxSelectMultiple,
                label="Care teams",
                help_text="Who may see this patient: the users of these teams (and staff).",
            )
            if self.instance.pk is not None:
                self.fields["care_teams"].initial = list(self.instance.care_teams.all())
        else:
            self.fields.pop("care_teams", None)

    def clean_care_teams(self) -> list[CareTeam] | None:
        chosen = self.cleaned_data.get("care_teams")
        if chosen is None or (self.instance.pk is None and not chosen):
            return None  # a new patient: the registering user's teams
        return list(chosen)


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
        help_texts = {
            "cycle_length_days": "Usually 14, 21 or 28.",
            "contains_doxorubicin": "Tick when the regimen contains doxorubicin. Doxorubicin "
            "can make a count falsely high: a count drawn 1 to 6 days after a cycle given "
            "in this line is marked, and its high flags are lowered to review (lab "
            "guidance: draw at least 7 days after the dose).",
        }


class CycleForm(VersionedForm):
    """A new cycle (with its number), or an edit: the number is fixed once created, and a
    delay is given as a new day 1 or as a number of days."""

    delay_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=365,
        label="Delay by (days)",
        help_text="Instead of a new day 1: day 1 moves this many days later and the cycle "
        "becomes delayed. Give the reason below.",
    )
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

    field_order = ["number", "scheduled_date", "delay_days", "status", "given_date"]

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["number"]  # which cycle this is does not change
        else:
            del self.fields["delay_days"], self.fields["move_later_cycles"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        days = data.get("delay_days")
        if not days:
            return data
        current = self.instance.scheduled_date
        delayed_to = current + timedelta(days=days)
        typed = data.get("scheduled_date")
        if typed not in (None, current, delayed_to):
            self.add_error(
                "delay_days",
                f"Give either a new day 1 or a number of days to delay by, not both "
                f"({days} days after {dates.day(current)} is {dates.day(delayed_to)}).",
            )
        elif data.get("status") not in (CycleStatus.PLANNED, CycleStatus.DELAYED):
            self.add_error("delay_days", "Only a planned or delayed cycle can be delayed.")
        else:
            data["scheduled_date"] = delayed_to
            data["status"] = CycleStatus.DELAYED
        return data

    def edited_fields(self) -> list[str]:
        """The fields the editor changed; a delay in days changes day 1 and the status."""
        changed = [name for name in self.changed_data if name != "delay_days"]
        if self.cleaned_data.get("delay_days"):
            changed += [name for name in ("scheduled_date", "status") if name not in changed]
        return changed


class CountField(forms.IntegerField):
    """A number of cells, or a lower bound typed with its sign: ">1000" reads 1000.

    The sign itself is read by `DrawForm`, which ticks "more than" for it.
    """

    widget = forms.TextInput  # a number input would not take the ">"
    default_error_messages = {
        "invalid": "Enter the count as a whole number of cells (0 or more), "
        "or a lower bound such as >1000.",
        "min_value": "A count cannot be negative: enter 0 or more cells.",
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
        elif not self.is_bound and "drawn_at" not in self.initial:
            # A draw is usually entered as it is taken: now, local, to the minute.
            self.initial["drawn_at"] = timezone.localtime().replace(second=0, microsecond=0)
        if self.is_bound and self.data.get(self.add_prefix(CONFIRM_SAME_DAY)):
            self.fields[CONFIRM_SAME_DAY] = same_day_confirmation()
        if self.is_bound and _typed_bound(self.data.get(self.add_prefix("ctc_count"))):
            # ">1000" typed in the count ticks "more than", as if the box had been ticked:
            # the edit then sees the qualifier change, and a form shown again shows it.
            data = self.data.copy() if isinstance(self.data, QueryDict) else dict(self.data)
            data[self.add_prefix("count_qualifier")] = "on"
            self.data = data

    def clean_drawn_at(self) -> datetime:
        value: datetime = self.cleaned_data["drawn_at"]
        return value if timezone.is_aware(value) else timezone.make_aware(value)

    def same_day_confirmed(self) -> bool:
        return bool(self.cleaned_data.get(CONFIRM_SAME_DAY))

    def ask_same_day_confirmation(self, message: str) -> None:
        """Show the confirmation box, with `message` (the draws of that day) as its error."""
        self.fields[CONFIRM_SAME_DAY] = same_day_confirmation()
        self.add_error(CONFIRM_SAME_DAY, message)

    def entry_fields(self) -> dict[str, Any]:
        """What the form read, as the draw use cases take it."""
        entry = self._meta.fields or ()
        return {k: v for k, v in self.cleaned_data.items() if k in entry}


CONFIRM_SAME_DAY = "confirm_same_day"


def same_day_confirmation() -> forms.BooleanField:
    return forms.BooleanField(
        required=False,
        label="Yes, this is another draw on the same day",
        help_text="Tick to save it beside the draw already recorded that day.",
    )


class EnteredInErrorForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Why was this draw entered in error?",
        error_messages={"required": "Say why it was entered in error."},
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Its own prefix: its fields never share an id with the correction form beside it.
    prefix = "error"

    def __init__(self, *args: Any, what: str = "draw", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = f"Why was this {what} entered in error?"


class ImagingForm(VersionedForm):
    reason = forms.CharField(
        required=False,
        max_length=CHANGE_REASON_MAX_LENGTH,
        help_text="Required when correcting saved imaging.",
    )

    class Meta:
        model = ImagingAssessment
        fields = ["performed_on", "modality", "response", "note"]
        widgets = {"performed_on": DateInput(), "note": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["reason"].required = True
        else:
            del self.fields["reason"], self.fields["version"]


class PlanCyclesForm(forms.Form):
    """Several cycles of a line at once: numbered on from `first_number`, every N days."""

    first_number = forms.IntegerField(
        min_value=1, max_value=999, label="First cycle number", help_text="Usually 1."
    )
    count = forms.IntegerField(
        min_value=1, max_value=MAX_CYCLES_PLANNED_AT_ONCE, label="Number of cycles"
    )
    first_date = forms.DateField(label="Day 1 of the first cycle", widget=DateInput())
    every_days = forms.IntegerField(
        min_value=1, max_value=365, label="Every (days)", help_text="The line's cycle length."
    )


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        max_length=2000,
        label="Note",
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": NOTE_REQUIRED},
    )
    # The page the form came from, to go back to (checked by acknowledging.back_to).
    next = forms.CharField(required=False, widget=forms.HiddenInput)


class OncologistByName(forms.ModelChoiceField):
    """An oncologist to choose, by full name (the username when there is none)."""

    def label_from_instance(self, obj: User) -> str:
        return obj.get_full_name() or obj.get_username()


class WorklistFilterForm(forms.Form):
    start = forms.DateField(
        required=False,
        label="From",
        widget=DateInput(),
        error_messages={"invalid": "enter a date, such as 2026-12-03."},
    )
    days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=60,
        label="Days",
        error_messages={
            "invalid": "enter a whole number of days.",
            "min_value": "enter at least 1 day.",
            "max_value": "enter at most 60 days.",
        },
    )
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
