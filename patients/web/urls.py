from __future__ import annotations

from django.urls import path

from patients import csv_views, views

app_name = "patients"
urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("cycles/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("patients/", views.patient_list, name="list"),
    path("patients/new/", views.patient_create, name="create"),
    path("patients/<int:pk>/", views.patient_detail, name="detail"),
    path("patients/<int:pk>/edit/", views.patient_edit, name="edit"),
    path("patients/<int:pk>/chart.svg", views.chart_svg, name="chart-svg"),
    path("patients/<int:pk>/chart.png", views.chart_png, name="chart-png"),
    path("patients/<int:pk>/report.pdf", views.report_pdf, name="report"),
    path("patients/<int:pk>/lines/new/", views.line_create, name="line-create"),
    path("lines/<int:pk>/edit/", views.line_edit, name="line-edit"),
    path("lines/<int:pk>/cycles/new/", views.cycle_create, name="cycle-create"),
    path("cycles/<int:pk>/edit/", views.cycle_edit, name="cycle-edit"),
    path("patients/<int:pk>/draws/new/", views.draw_create, name="draw-create"),
    path("draws/<int:pk>/edit/", views.draw_edit, name="draw-edit"),
    path("draws/<int:pk>/entered-in-error/", views.draw_entered_in_error, name="draw-error"),
    path("patients/<int:pk>/imaging/new/", views.imaging_create, name="imaging-create"),
    path("imports/csv/", csv_views.upload, name="csv-upload"),
    path("imports/csv/confirm/", csv_views.confirm, name="csv-confirm"),
    path("patients/<int:pk>/draws.csv", csv_views.export_patient, name="csv-export-patient"),
    path("exports/draws.csv", csv_views.export_all, name="csv-export-all"),
]
