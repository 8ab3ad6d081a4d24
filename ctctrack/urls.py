from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from ctctrack import health

urlpatterns = [
    # For load balancers: anyone, "ok" / "ready", no data (ctctrack/health.py).
    path(health.HEALTHZ_PATH.lstrip("/"), health.healthz, name="healthz"),
    path(health.READYZ_PATH.lstrip("/"), health.readyz, name="readyz"),
    path("", include("patients.web.urls")),
    path("accounts/mfa/", include("patients.accounts.urls")),
    # Sign in and out, change one's password; no password reset by e-mail: it would answer
    # anyone, and staff manage accounts in admin.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("api/v1/", include("patients.api.urls")),
    path("fhir/r4/", include("patients.interop.fhir.urls")),
    path("audit/", include("patients.audit.urls")),
    path("admin/", admin.site.urls),
]

# A form over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 naming the limit; FHIR and API callers
# get their own format.
handler400 = "ctctrack.errors.bad_request"
# Every refusal is recorded in the access log (after the refused view's rollback).
handler403 = "patients.audit.views.permission_denied"
# FHIR and API callers get their own format (OperationOutcome, JSON); pages get HTML.
handler404 = "ctctrack.errors.page_not_found"
handler500 = "ctctrack.errors.server_error"
