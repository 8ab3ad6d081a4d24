"""`make run` (DEBUG on) shows the app's own error pages; a documented switch brings back
Django's technical pages for debugging."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import path

from ctctrack.urls import urlpatterns as project_urls

pytestmark = pytest.mark.django_db


def _crash(request):
    raise RuntimeError("boom")


urlpatterns = [*project_urls, path("crash-for-test/", _crash)]


@pytest.fixture
def signed_in(client, nurse, settings) -> Client:
    settings.DEBUG = True  # as under `make run` (pytest-django turns it off)
    client.force_login(nurse)
    return client


def test_a_missing_page_is_the_apps_404_not_djangos_technical_page(signed_in):
    r = signed_in.get("/no-such-page/")

    assert r.status_code == 404
    body = r.content.decode()
    assert "There is nothing at this address." in body
    assert "Using the URLconf" not in body  # Django's technical 404


def test_a_missing_record_is_the_apps_404(signed_in):
    r = signed_in.get("/patients/999999/")

    assert r.status_code == 404
    assert "There is nothing at this address." in r.content.decode()


@override_settings(ROOT_URLCONF=__name__, DEBUG=True)
def test_a_crash_is_the_apps_500_page(nurse):
    client = Client(raise_request_exception=False)
    client.force_login(nurse)

    r = client.get("/crash-for-test/")

    assert r.status_code == 500
    body = r.content.decode()
    assert "Traceback" not in body and "boom" not in body
    assert "Something went wrong" in body


def test_the_technical_pages_are_one_switch_away(signed_in, settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "ctctrack.middleware.AppErrorPagesMiddleware"
    ]

    r = signed_in.get("/no-such-page/")

    assert "Using the URLconf" in r.content.decode()


def test_the_switch_is_read_from_the_environment(monkeypatch):
    """CTCTRACK_TECHNICAL_ERROR_PAGES=True leaves the middleware out (the README's switch)."""
    import importlib

    import ctctrack.settings as project_settings

    monkeypatch.setenv("DEBUG", "True")
    monkeypatch.setenv("CTCTRACK_TECHNICAL_ERROR_PAGES", "True")
    technical = importlib.reload(project_settings).MIDDLEWARE
    monkeypatch.setenv("CTCTRACK_TECHNICAL_ERROR_PAGES", "False")
    app_pages = importlib.reload(project_settings).MIDDLEWARE
    monkeypatch.delenv("CTCTRACK_TECHNICAL_ERROR_PAGES")
    importlib.reload(project_settings)

    assert "ctctrack.middleware.AppErrorPagesMiddleware" not in technical
    assert "ctctrack.middleware.AppErrorPagesMiddleware" in app_pages
