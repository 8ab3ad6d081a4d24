"""Django admin for staff. Clinical rows show their change history and are never deleted.

Creating and changing clinical data is the clinicians' job in the app and the
API, where the services apply every clinical rule (optimistic locking, a reason,
the chart's `data_version`, the worklist's rank), so admin is read-only for
the whole clinical record and the access log, on every page, the change
history's included: staff read every row and every version of it here, and
any write is refused with 403. Reading them here is recorded in the access log
like reading them anywhere else. Care teams are staff's to manage (a change of
a patient's teams goes through the services, into the patient's history).
Accounts (users, groups, devices) stay
editable, with these limits: staff revoke API tokens but never issue one or
see a key, and remove a user's two-factor devices (a reset, recorded in the
access log) but never see, choose or change their secrets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice
from simple_history.admin import SimpleHistoryAdmin

from patients import audit, services
from patients.accounts import api_tokens
from patients.accounts.mfa import issue_enrolment_code
from patients.models import (
    AccessAction,
    AccessEvent,
    ApiToken,
    CareTeam,
    CTCDraw,
    ImagingAssessment,
    MfaEnrolment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)

# The only methods a read-only admin answers; anything else could write.
READ_METHODS = frozenset({"GET", "HEAD"})

View = Callable[..., HttpResponse]


def reads_only(view: View) -> View:
    """`view`, refusing every method but GET and HEAD with 403 (logged as a refusal)."""

    @wraps(view)
    def read(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in READ_METHODS:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return read


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows and never writes them, whatever page is asked and whatever settings say.

    Each check stands on its own, so that a page added by a new version of Django
    or simple-history, or a setting that turns editing on, cannot open a way in:
    every URL refuses writes before its view runs; nobody may add, change or
    delete; every field is shown read-only; and saving or deleting raises.
    """

    actions = None

    def get_urls(self) -> list[URLPattern]:
        return [
            URLPattern(url.pattern, reads_only(url.callback), url.default_args, url.name)
            for url in super().get_urls()
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Django's change page is read-only without the change permission anyway, but
        # simple-history's version page builds its form from this list alone.
        shown = list(super().get_readonly_fields(request, obj))
        fields = [*self.opts.fields, *self.opts.many_to_many]
        editable = [f.name for f in fields if f.editable and not isinstance(f, models.AutoField)]
        return shown + [name for name in editable if name not in shown]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        raise PermissionDenied

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        raise PermissionDenied


class ClinicalAdmin(ReadOnlyAdmin, SimpleHistoryAdmin):
    """Read-only: clinical writes go through the services, which validate them.

    Staff see every version in the change history, never a form to revert to one.
    """

    # The lookup from a row of this model to its patient's id, for the access log.
    patient_lookup = "patient_id"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            # The page shows names and MRNs: name the patients it showed.
            shown = getattr(response, "context_data", {}).get("cl")
            pks = [row.pk for row in shown.result_list] if shown is not None else []
            rows = self.model._default_manager.filter(pk__in=pks)
            audit.record_read(
                request,
                AccessAction.VIEW,
                patient_ids=rows.values_list(self.patient_lookup, flat=True),
                what=f"admin {self.opts.model_name} list",
            )
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        return self._recorded(request, response, object_id, "")

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        response = super().history_view(request, object_id, extra_context)
        return self._recorded(request, response, object_id, " history")

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        # No "Change History" button either, even if SIMPLE_HISTORY_EDIT is set.
        context = {**(extra_context or {}), "change_history": False}
        response = super().history_form_view(request, object_id, version_id, context)
        return self._recorded(request, response, object_id, f" version {version_id}")

    def _recorded(
        self, request: HttpRequest, response: HttpResponse, object_id: str, page: str
    ) -> HttpResponse:
        if response.status_code == 200:
            rows = self.model._default_manager.filter(pk=object_id)
            patient_id = rows.values_list(self.patient_lookup, flat=True).first()
            target = f"admin {self.opts.model_name} #{object_id}{page}"
            audit.record(request, AccessAction.VIEW, patient=patient_id, target=target)
        return response

    # simple-history asks these, not has_change_permission, when its settings enforce
    # the history models' own permissions (a superuser holds them all) or allow reverts.
    def has_change_history_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True


@admin.register(Patient)
class PatientAdmin(ClinicalAdmin):
    patient_lookup = "pk"
    list_display = ["mrn", "family_name", "given_name", "cancer_type", "oncologist", "active"]
    list_filter = ["cancer_type", "active"]
    # By id only: admin search goes in the URL (?q=), where names and MRNs must never be;
    # find a patient by name or MRN with the app's patient search, which posts it.
    search_fields = ["=id"]
    search_help_text = "Search by patient id (find it by name or MRN in the app's patient search)."
    list_select_related = ["oncologist"]


@admin.register(TherapyLine)
class TherapyLineAdmin(ClinicalAdmin):
    list_display = ["patient", "line_number", "regimen", "start_date", "end_date"]
    list_select_related = ["patient"]
    search_fields = ["=patient__id", "regimen"]
    search_help_text = "Search by patient id or regimen."


@admin.register(TreatmentCycle)
class TreatmentCycleAdmin(ClinicalAdmin):
    patient_lookup = "therapy_line__patient_id"
    list_display = ["therapy_line", "number", "scheduled_date", "given_date", "status"]
    list_filter = ["status"]
    list_select_related = ["therapy_line__patient"]
    search_fields = ["=therapy_line__patient__id"]
    search_help_text = "Search by patient id."


@admin.register(CTCDraw)
class CTCDrawAdmin(ClinicalAdmin):
    list_display = [
        "patient",
        "drawn_at",
        "status",
        "count_qualifier",
        "ctc_count",
        "blood_volume_ml",
        "accession",
    ]
    list_filter = ["status"]
    list_select_related = ["patient"]
    search_fields = ["=patient__id", "accession"]
    search_help_text = "Search by patient id or accession number."
    date_hierarchy = "drawn_at"


@admin.register(ImagingAssessment)
class ImagingAssessmentAdmin(ClinicalAdmin):
    list_display = ["patient", "performed_on", "modality", "response"]
    list_filter = ["modality", "response"]
    list_select_related = ["patient"]


# What the access log's page shows, every field read-only. A tuple: Django's types
# give `fields` (field groups) and `readonly_fields` (names) different list types,
# and a tuple of names is both.
ACCESS_EVENT_FIELDS = (
    "at",
    "user",
    "username",
    "patient",
    "action",
    "outcome",
    "target",
    "client_address",
    "prev_hash",
    "hash",
)


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyAdmin):
    """The access log, for reading only: nobody adds, changes or deletes an event here."""

    list_display = ["id", "at", "username", "action", "outcome", "patient", "target"]
    list_filter = ["action", "outcome"]
    list_select_related = ["patient"]
    search_fields = ["username", "target"]
    date_hierarchy = "at"
    ordering = ["-id"]
    fields = ACCESS_EVENT_FIELDS
    readonly_fields = ACCESS_EVENT_FIELDS


# --- care teams: staff create, rename, and give members and patients -----------------------


# MRNs one save of a team's form may add or take off: each is a locked row and a row of
# the patient's history, and the request must end well within the worker's timeout.
MAX_TEAM_CHANGES = 2000


class MrnListField(forms.CharField):
    """MRNs pasted as a list: one per line, or separated by commas, semicolons or spaces.

    Cleans to the MRNs in the order given, each once. A team's patients are chosen
    by MRN rather than from a list of every patient, which a clinic of 100,000
    would send to the browser whole.
    """

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        mrns = list(dict.fromkeys(m for m in re.split(r"[\s,;]+", text) if m))
        if len(mrns) > MAX_TEAM_CHANGES:
            raise ValidationError(
                f"At most {MAX_TEAM_CHANGES:,} MRNs a save ({len(mrns):,} given): "
                "save the list in parts."
            )
        return mrns


class CareTeamForm(ModelForm):
    # Not fields of the team: a patient's teams are the patient's record, changed through
    # the services (each change a row of the patient's history, by whom).
    add_patients = MrnListField(
        label="Add patients",
        required=False,
        help_text="MRNs, one per line (or separated by commas or spaces). "
        "This team's users will see these patients.",
    )
    remove_patients = MrnListField(
        label="Take patients off the team",
        required=False,
        help_text="MRNs of patients of this team.",
    )

    class Meta:
        model = CareTeam
        fields = ["name", "members"]
        widgets = {"members": FilteredSelectMultiple("members", is_stacked=False)}
        help_texts = {"members": "The users who see this team's patients."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            count = self.instance.patients.count()
            self.fields[
                "add_patients"
            ].help_text += f" The team has {count:,} patient{'' if count == 1 else 's'} now."

    def clean_add_patients(self) -> list[Patient]:
        mrns = self.cleaned_data["add_patients"]
        found = {p.mrn: p for p in Patient.objects.filter(mrn__in=mrns)}
        if unknown := [m for m in mrns if m not in found]:
            which = "the MRN" if len(unknown) == 1 else "these MRNs:"
            raise ValidationError(f"No patient has {which} {_listed(unknown)}.")
        return [found[m] for m in mrns]

    def clean_remove_patients(self) -> list[Patient]:
        mrns = self.cleaned_data.get("remove_patients", [])
        if not mrns:  # and a new team, without an id yet, has none to take off
            return []
        found = {p.mrn: p for p in self.instance.patients.filter(mrn__in=mrns)}
        if absent := [m for m in mrns if m not in found]:
            raise ValidationError(f"Not on this team: {_listed(absent)}.")
        return [found[m] for m in mrns]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        adding, removing = data.get("add_patients", []), data.get("remove_patients", [])
        both = {p.mrn for p in adding} & {p.mrn for p in removing}
        if both:
            self.add_error("remove_patients", f"Both added and taken off: {_listed(sorted(both))}.")
        elif len(adding) + len(removing) > MAX_TEAM_CHANGES:
            self.add_error(
                "remove_patients",
                f"At most {MAX_TEAM_CHANGES:,} patients added and taken off a save "
                f"({len(adding) + len(removing):,} given): save the lists in parts.",
            )
        return data


def _listed(mrns: list[str], shown: int = 20) -> str:
    """MRNs for a message: the first `shown`, and how many more."""
    more = len(mrns) - shown
    return ", ".join(mrns[:shown]) + (f" and {more:,} more" if more > 0 else "")


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    """Care teams (docs/security.md): from the second team on, users see their teams'
    patients only. A team is renamed, never deleted: patients' histories name it."""

    form = CareTeamForm
    list_display = ["name", "member_count", "patient_count"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CareTeam]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                members_n=models.Count("members", distinct=True),
                patients_n=models.Count("patients", distinct=True),
            )
        )

    @admin.display(description="members", ordering="members_n")
    def member_count(self, team: Any) -> int:
        return int(team.members_n)

    @admin.display(description="patients", ordering="patients_n")
    def patient_count(self, team: Any) -> int:
        return int(team.patients_n)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # A new team has no patients to take off.
        fields = ("name", "members", "add_patients", "remove_patients")
        return fields if obj is not None else fields[:-1]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # the members
        team = form.instance
        added = services.teams.add_patients_to_team(
            team, form.cleaned_data["add_patients"], by=request.user
        )
        removed = services.teams.remove_patients_from_team(
            team, form.cleaned_data.get("remove_patients", []), by=request.user
        )
        done = [
            f"{count:,} patient{'' if count == 1 else 's'} {what}"
            for count, what in ((added, "added"), (removed, "taken off the team"))
            if count
        ]
        if done:
            self.message_user(request, f"{team}: {' and '.join(done)}.")


# --- credentials: staff revoke and reset, never issue, read or choose a secret -------------


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: who holds which (by prefix), until when, and revoking them.

    The key is never stored, so it cannot be shown; nobody adds a token here (a
    token is issued to its owner after both factors) or edits one.
    """

    list_display = ["prefix", "user", "name", "created_at", "expires_at", "token_state"]
    list_filter = ["revoked_at"]
    list_select_related = ["user", "revoked_by"]
    search_fields = ["prefix", "user__username", "name"]
    ordering = ["-created_at"]
    fields = ("prefix", "user", "name", "created_at", "expires_at", "revoked_at", "revoked_by")
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="state")
    def token_state(self, token: ApiToken) -> str:
        return str(api_tokens.state(token))

    @admin.action(description="Revoke the selected tokens", permissions=["view"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(
            api_tokens.revoke(token, by=request.user, request=request) for token in queryset
        )
        self.message_user(request, f"Revoked {revoked} of {len(queryset)} selected tokens.")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, never deleted: the log refers to them


class SecretKeepingDeviceAdmin(admin.ModelAdmin):
    """A two-factor device, for staff: seen by owner and name, removed to reset, never set.

    No add (a device is set up by its owner, who scans its secret), no change
    (the secret, or the recovery codes, would be staff's to choose or read), no
    QR code or configuration page; deleting one resets the user's two-factor
    sign-in and is recorded in the access log.
    """

    fieldsets = None
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields
    inlines = []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return [(None, {"fields": self.fields})]

    def get_urls(self) -> list[URLPattern]:
        # django-otp's TOTP admin adds a configuration page and a QR code of the secret.
        return admin.ModelAdmin.get_urls(self)

    def get_list_display(self, request: HttpRequest) -> Any:
        return ["user", "name", "confirmed", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._record_reset(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._record_reset(request, list(queryset))
        super().delete_queryset(request, queryset)

    def _record_reset(self, request: HttpRequest, devices: list[Any]) -> None:
        for device in devices:
            target = f"{self.opts.verbose_name} of user #{device.user_id} removed by staff"
            audit.record(request, AccessAction.MFA_RESET, target=target)


class TOTPDeviceResetAdmin(SecretKeepingDeviceAdmin, TOTPDeviceAdmin):
    pass


class StaticDeviceResetAdmin(SecretKeepingDeviceAdmin, StaticDeviceAdmin):
    pass


for _model, _admin in ((TOTPDevice, TOTPDeviceResetAdmin), (StaticDevice, StaticDeviceResetAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)


# --- enrolment codes for the first authenticator app -----------------------------------------


class EnrollingUserAdmin(UserAdmin):
    """Django's user admin, with an action that issues a two-factor enrolment code."""

    actions = ["issue_enrolment_codes"]

    @admin.action(description="Issue a two-factor enrolment code (give it in person or by phone)")
    def issue_enrolment_codes(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in queryset:
            code = issue_enrolment_code(user, by=request.user)
            target = f"two-factor enrolment code for user #{user.pk}"
            audit.record(request, AccessAction.MFA_ENROLMENT, target=target)
            # Shown once (messages are kept in the session, server-side), never stored.
            self.message_user(
                request,
                f"Enrolment code for {user.get_username()}: {code} (works once, for "
                f"{settings.CTCTRACK_MFA_ENROLMENT_HOURS} hours). Give it to them in person "
                "or by phone, never by e-mail.",
            )


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, EnrollingUserAdmin)


@admin.register(MfaEnrolment)
class MfaEnrolmentAdmin(ReadOnlyAdmin):
    """Enrolment codes issued: to whom, by whom, until when, whether used (never the code)."""

    list_display = ["user", "issued_by", "issued_at", "expires_at", "used_at"]
    list_select_related = ["user", "issued_by"]
    fields = ("user", "issued_by", "issued_at", "expires_at", "used_at")
    ordering = ["-issued_at"]
