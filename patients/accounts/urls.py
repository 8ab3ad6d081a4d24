"""The two-factor pages' URLs, included at /accounts/mfa/ (namespace "mfa")."""

from __future__ import annotations

from django.urls import path

from patients.accounts import views

app_name = "mfa"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("setup/", views.setup, name="setup"),
    path("verify/", views.verify, name="verify"),
    path("recovery-codes/", views.new_recovery_codes, name="recovery-codes"),
    path("disable/", views.disable, name="disable"),
]
