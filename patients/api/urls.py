from __future__ import annotations

from django.urls import path

from patients.accounts.tokens import obtain_token
from patients.api import views
from patients.interop.hl7 import views as hl7_views

app_name = "api"
urlpatterns = [
    path("auth/token/", obtain_token, name="token"),
    path("hl7/oru/", hl7_views.Hl7Oru.as_view(), name="hl7-oru"),
    path("patients/", views.PatientList.as_view(), name="patient-list"),
    path("patients/<int:pk>/", views.PatientDetail.as_view(), name="patient-detail"),
    path(
        "patients/<int:pk>/therapy-lines/",
        views.TherapyLineList.as_view(),
        name="therapy-line-list",
    ),
    path("therapy-lines/<int:pk>/cycles/", views.CycleList.as_view(), name="cycle-list"),
    path("cycles/<int:pk>/", views.CycleDetail.as_view(), name="cycle-detail"),
    path("patients/<int:pk>/draws/", views.DrawList.as_view(), name="draw-list"),
    path("draws/<int:pk>/", views.DrawDetail.as_view(), name="draw-detail"),
    path(
        "draws/<int:pk>/entered-in-error/",
        views.DrawEnteredInError.as_view(),
        name="draw-entered-in-error",
    ),
    path("patients/<int:pk>/imaging/", views.ImagingList.as_view(), name="imaging-list"),
    path("imaging/<int:pk>/", views.ImagingDetail.as_view(), name="imaging-detail"),
    path(
        "imaging/<int:pk>/entered-in-error/",
        views.ImagingEnteredInError.as_view(),
        name="imaging-entered-in-error",
    ),
    path(
        "patients/<int:pk>/assessment/",
        views.PatientAssessment.as_view(),
        name="patient-assessment",
    ),
    path("worklist/", views.Worklist.as_view(), name="worklist"),
    path("results-to-review/", views.ResultsToReview.as_view(), name="results-to-review"),
    path(
        "draws/<int:pk>/acknowledgements/",
        views.ResultAcknowledgementList.as_view(),
        name="result-acknowledgement-list",
    ),
    path(
        "cycles/<int:pk>/acknowledgements/",
        views.AcknowledgementList.as_view(),
        name="acknowledgement-list",
    ),
]
