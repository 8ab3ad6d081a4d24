"""Security headers on every answer: Content-Security-Policy, no framing, no sniffing,
same-origin referrers, `Cache-Control: no-store`; HTTPS redirect, HSTS and secure
cookies when production settings are on."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.builders import api_token
from tests.paths import ROOT

pytestmark = pytest.mark.django_db

TEMPLATES = ROOT / "templates"
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def _policy(response) -> dict[str, str]:
    return dict(p.strip().split(" ", 1) for p in response["Content-Security-Policy"].split(";"))


def test_pages_carry_the_content_security_policy(client, nurse):
    client.force_login(nurse)

    r = client.get("/")

    assert _policy(r) == POLICY


def test_the_login_page_carries_the_policy_and_the_browser_protections(client):
    r = client.get("/accounts/login/")

    assert _policy(r) == POLICY
    assert r["X-Frame-Options"] == "DENY"
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Referrer-Policy"] == "same-origin"
    assert r["Cross-Origin-Opener-Policy"] == "same-origin"


def test_no_template_has_inline_script_or_style():
    # The policy would block them: scripts and styles live in static files.
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|<style|\son[a-z]+=", path.read_text())
    ]

    assert offenders == []


def test_an_svg_chart_opened_on_its_own_gets_a_policy_without_scripts(client, nurse, patient):
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/chart.svg")

    assert r["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )


# --- no-store, per kind of answer ---------------------------------------------------------------


@pytest.fixture
def urls(patient, cycle, draw) -> dict[str, str]:
    return {
        "worklist": "/",
        "patient list": "/patients/",
        "patient page": f"/patients/{patient.pk}/",
        "form": f"/patients/{patient.pk}/draws/new/",
        "chart svg": f"/patients/{patient.pk}/chart.svg",
        "chart png": f"/patients/{patient.pk}/chart.png",
        "report": f"/patients/{patient.pk}/report.pdf",
        "api list": "/api/v1/patients/",
        "api record": f"/api/v1/patients/{patient.pk}/",
        "api assessment": f"/api/v1/patients/{patient.pk}/assessment/",
        "not found page": "/patients/999999/",
        "api not found": "/api/v1/patients/999999/",
        "two-factor page": "/accounts/mfa/",
        "admin": f"/admin/patients/patient/{patient.pk}/change/",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "worklist",
        "patient list",
        "patient page",
        "form",
        "chart svg",
        "chart png",
        "report",
        "api list",
        "api record",
        "api assessment",
        "not found page",
        "api not found",
        "two-factor page",
        "admin",
    ],
)
def test_every_answer_with_patient_data_is_never_stored(client, admin_user, urls, kind):
    client.force_login(admin_user)

    r = client.get(urls[kind])

    assert r.status_code in (200, 404), r.status_code
    assert "no-store" in r["Cache-Control"]
    assert "private" in r["Cache-Control"]


def test_a_refusal_is_never_stored(client, outsider, patient):
    client.force_login(outsider)

    r = client.get(f"/patients/{patient.pk}/")

    assert r.status_code == 403
    assert "no-store" in r["Cache-Control"]


def test_the_login_page_and_the_token_endpoint_are_never_stored(client, api, nurse):
    page = client.get("/accounts/login/")
    token = api.post(
        "/api/v1/auth/token/", {"username": "nina", "password": "correct-horse-42"}, format="json"
    )

    assert "no-store" in page["Cache-Control"]
    assert "no-store" in token["Cache-Control"]


def test_an_api_answer_by_token_is_never_stored(api, nurse):
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(nurse)}")

    r = api.get("/api/v1/worklist/")

    assert "no-store" in r["Cache-Control"]


def test_a_chart_keeps_its_etag_and_answers_304(client, nurse, patient):
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/chart.svg"
    first = client.get(url)

    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304
    assert "no-store" in first["Cache-Control"] and "no-store" in again["Cache-Control"]


def test_static_files_keep_their_caching(settings):
    # WhiteNoise answers static files before the no-store middleware: no patient data there.
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True

    r = Client().get("/static/css/app.css")

    assert r.status_code == 200
    assert "no-store" not in r.get("Cache-Control", "")


# --- production transport -----------------------------------------------------------------------


def test_with_production_settings_http_is_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    r = client.get("/accounts/login/")

    assert r.status_code == 301
    assert r["Location"] == "https://testserver/accounts/login/"


def test_with_production_settings_https_answers_carry_hsts(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    r = client.get("/accounts/login/", secure=True)

    assert r["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_with_production_settings_the_cookies_are_secure_and_httponly(client, nurse, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "__Host-sessionid", "__Host-csrftoken"

    client.get("/accounts/login/", secure=True)
    r = client.post(
        "/accounts/login/",
        {"username": "nina", "password": "correct-horse-42"},
        secure=True,
    )

    session, csrf = r.cookies["__Host-sessionid"], client.cookies["__Host-csrftoken"]
    for cookie in (session, csrf):
        assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
        assert cookie["samesite"] == "Lax"
    assert session["max-age"] == ""  # ends when the browser closes
