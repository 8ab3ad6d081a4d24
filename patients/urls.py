from __future__ import annotations

from django.urls import path

from patients import views

app_name = "patients"
urlpatterns = [
    path("", views.home, name="home"),
]
