from __future__ import annotations

from django.urls import path

from patients.interop.csv import views as csv_views
from patients.web import (
    chart_report,
    patient_pages,
    record_forms,
    results,
    staff_pages,
    tokens,
    worklist,
)

app_name = "patients"
urlpatterns = [
    path("", worklist.worklist, name="worklist"),
    path("cycles/<int:pk>/acknowledge/", worklist.acknowledge, name="acknowledge"),
    path("results/", results.results, name="results"),
    path("draws/<int:pk>/acknowledge/", results.acknowledge_result, name="acknowledge-result"),
    path("patients/", patient_pages.patient_list, name="list"),
    path("patients/new/", record_forms.patient_create, name="create"),
    path("patients/<int:pk>/", patient_pages.patient_detail, name="detail"),
    path("patients/<int:pk>/edit/", record_forms.patient_edit, name="edit"),
    path("patients/<int:pk>/chart.svg", chart_report.chart_svg, name="chart-svg"),
    path("patients/<int:pk>/chart.png", chart_report.chart_png, name="chart-png"),
    path("patients/<int:pk>/report.pdf", chart_report.report_pdf, name="report"),
    path("patients/<int:pk>/lines/new/", record_forms.line_create, name="line-create"),
    path("lines/<int:pk>/edit/", record_forms.line_edit, name="line-edit"),
    path("lines/<int:pk>/cycles/new/", record_forms.cycle_create, name="cycle-create"),
    path("lines/<int:pk>/cycles/plan/", record_forms.cycles_plan, name="cycles-plan"),
    path("cycles/<int:pk>/edit/", record_forms.cycle_edit, name="cycle-edit"),
    path("patients/<int:pk>/draws/new/", record_forms.draw_create, name="draw-create"),
    path("draws/<int:pk>/edit/", record_forms.draw_edit, name="draw-edit"),
    path("draws/<int:pk>/entered-in-error/", record_forms.draw_entered_in_error, name="draw-error"),
    path("patients/<int:pk>/imaging/new/", record_forms.imaging_create, name="imaging-create"),
    path("imaging/<int:pk>/edit/", record_forms.imaging_edit, name="imaging-edit"),
    path(
        "imaging/<int:pk>/entered-in-error/",
        record_forms.imaging_entered_in_error,
        name="imaging-error",
    ),
    path("imports/csv/", csv_views.upload, name="csv-upload"),
    path("imports/csv/confirm/", csv_views.confirm, name="csv-confirm"),
    path("patients/<int:pk>/draws.csv", csv_views.export_patient, name="csv-export-patient"),
    path("exports/draws.csv", csv_views.export_all, name="csv-export-all"),
    path("account/api-tokens/", tokens.api_tokens_page, name="api-tokens"),
    path(
        "staff/replicate-variation/",
        staff_pages.replicate_variation,
        name="replicate-variation",
    ),
]
