"""Django admin for staff. Clinical rows show their change history and are never deleted.

Admin edits still record who changed what (simple-history's admin passes the
user). Creating and changing clinical data is the clinicians' job in the app
and the API, where the services apply every clinical rule, so admin is
read-only for clinical records. Reading them here is recorded in the access
log like reading them anywhere else; the access log itself is read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from patients import audit
from patients.models import (
    AccessAction,
    AccessEvent,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)


class ClinicalAdmin(SimpleHistoryAdmin):
    """Read-only: clinical writes go through the services, which validate them."""

    # The lookup from a row of this model to its patient's id, for the access log.
    patient_lookup = "patient_id"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            target = f"admin {self.opts.model_name} list"
            audit.record(request, AccessAction.VIEW, target=target)
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
        response = super().history_form_view(request, object_id, version_id, extra_context)
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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ClinicalAdmin):
    patient_lookup = "pk"
    list_display = ["mrn", "family_name", "given_name", "cancer_type", "oncologist", "active"]
    list_filter = ["cancer_type", "active"]
    search_fields = ["mrn", "family_name", "given_name"]
    list_select_related = ["oncologist"]


@admin.register(TherapyLine)
class TherapyLineAdmin(ClinicalAdmin):
    list_display = ["patient", "line_number", "regimen", "start_date", "end_date"]
    list_select_related = ["patient"]
    search_fields = ["patient__mrn", "regimen"]


@admin.register(TreatmentCycle)
class TreatmentCycleAdmin(ClinicalAdmin):
    patient_lookup = "therapy_line__patient_id"
    list_display = ["therapy_line", "number", "scheduled_date", "given_date", "status"]
    list_filter = ["status"]
    list_select_related = ["therapy_line__patient"]
    search_fields = ["therapy_line__patient__mrn"]


@admin.register(CTCDraw)
class CTCDrawAdmin(ClinicalAdmin):
    list_display = ["patient", "drawn_at", "status", "ctc_count", "blood_volume_ml", "accession"]
    list_filter = ["status"]
    list_select_related = ["patient"]
    search_fields = ["patient__mrn", "accession"]
    date_hierarchy = "drawn_at"


@admin.register(ImagingAssessment)
class ImagingAssessmentAdmin(ClinicalAdmin):
    list_display = ["patient", "performed_on", "modality", "response"]
    list_filter = ["modality", "response"]
    list_select_related = ["patient"]


@admin.register(AccessEvent)
class AccessEventAdmin(admin.ModelAdmin):
    """The access log, for reading only: nobody adds, changes or deletes an event here."""

    list_display = ["id", "at", "username", "action", "outcome", "patient", "target"]
    list_filter = ["action", "outcome"]
    list_select_related = ["patient"]
    search_fields = ["username", "target"]
    date_hierarchy = "at"
    ordering = ["-id"]
    actions = None
    fields = [
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
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
