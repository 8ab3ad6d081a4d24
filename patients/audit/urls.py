from __future__ import annotations

from django.urls import path

from patients.audit import views as audit_views

app_name = "audit"
urlpatterns = [
    path("", audit_views.audit_report, name="report"),
]
