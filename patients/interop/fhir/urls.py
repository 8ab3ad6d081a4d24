"""FHIR R4 endpoints, mounted at /fhir/r4/ (docs/interoperability.md)."""

from __future__ import annotations

from django.urls import path

from patients.interop.fhir import views as interop

app_name = "fhir"
urlpatterns = [
    path("metadata", interop.Metadata.as_view(), name="metadata"),
    path("Patient/<str:resource_id>", interop.PatientRead.as_view(), name="patient"),
    path("Observation", interop.ObservationSearch.as_view(), name="observation-search"),
    path(
        "Observation/_search",
        interop.ObservationSearchByPost.as_view(),
        name="observation-search-post",
    ),
    path("Observation/<str:resource_id>", interop.ObservationRead.as_view(), name="observation"),
]
