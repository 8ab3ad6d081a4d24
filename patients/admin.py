"""Django admin for staff. Clinical rows show their change history and are never deleted.

Admin edits still record who changed what (simple-history's admin passes the
user). Creating and changing clinical data is the clinicians' job in the app
and the API, where the services apply every clinical rule, so admin is
read-only for clinical records.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from patients.models import CTCDraw, ImagingAssessment, Patient, TherapyLine, TreatmentCycle


class ClinicalAdmin(SimpleHistoryAdmin):
    """Read-only: clinical writes go through the services, which validate them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ClinicalAdmin):
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
