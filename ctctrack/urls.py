from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("patients.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("patients.api.urls")),
    path("admin/", admin.site.urls),
]
