"""CSRF on every form: every <form method="post"> that an oncologist, a nurse or a staff
user can reach is refused (403) without the CSRF token, and nothing is saved.

The forms are found by walking the site as each user would: from the worklist, the
two-factor page and admin, following every link on every page.
"""

from __future__ import annotations

from collections import deque
from datetime import date, timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from patients import services
from patients.models import AccessAction, AccessEvent, AccessOutcome

pytestmark = pytest.mark.django_db

START = ["/", "/accounts/mfa/", "/accounts/password_change/"]
SKIP_SUFFIXES = (".png", ".svg", ".pdf", ".csv", ".json", ".xml")
MAX_PAGES = 600


class _Page(HTMLParser):
    """The links and the POST forms (action and fields) of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self._form = {"method": a.get("method", "get").lower(), "action": a.get("action")}
            self._form["fields"] = {}
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "textarea") and a.get("name"):
            self._form["fields"].setdefault(a["name"], a.get("value", "x"))
        elif self._form is not None and tag == "select":
            self._select = a.get("name")
        elif self._form is not None and tag == "option" and self._select:
            self._form["fields"].setdefault(self._select, a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def _crawl(client: Client, start: list[str]) -> dict[str, tuple[str, dict]]:
    """Every POST form reachable from `start`: {action URL: (page it is on, its fields)}."""
    seen, queue, forms = set(start), deque(start), {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        r = client.get(url)
        if r.status_code != 200 or "text/html" not in r.get("Content-Type", ""):
            continue
        page = _Page()
        page.feed(r.content.decode())
        for form in page.forms:
            if form["method"] == "post":
                action = urljoin(url, form["action"] or url)
                forms.setdefault(action, (url, form["fields"]))
        for href in page.links:
            target = urlsplit(urljoin(url, href))
            link = target.path  # query-string variants show the same forms
            if target.netloc or link in seen or link.endswith(SKIP_SUFFIXES):
                continue
            seen.add(link)
            queue.append(link)
    return forms


# Sign-in bookkeeping, and the access log, which records refusals by design.
NOT_COMPARED = {"sessions.Session", "axes.AccessLog", "patients.AccessEvent"}


def _everything_stored() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.label not in NOT_COMPARED
    }


@pytest.fixture
def clinic(oncologist, patient, line, cycle, draw):
    """A patient with every kind of record, and a flagged cycle due on the worklist."""
    services.record_imaging(
        patient=patient,
        by=oncologist,
        performed_on=date(2026, 1, 20),
        modality="ct",
        response="SD",
    )
    due = services.plan_cycle(
        line=line, by=oncologist, number=2, scheduled_date=timezone.localdate() + timedelta(days=3)
    )
    drawn = timezone.now() - timedelta(days=1)
    services.record_draw(patient=patient, by=oncologist, drawn_at=drawn, ctc_count=12)
    return {"patient": patient, "due": due}


def _refused_without_token(strict: Client, forms: dict[str, tuple[str, dict]]) -> list[str]:
    """The actions that did NOT answer 403 to a POST without the CSRF token."""
    accepted = []
    for action, (_page, fields) in forms.items():
        data = {k: v for k, v in fields.items() if k != "csrfmiddlewaretoken"}
        r = strict.post(action, data)
        if r.status_code != 403:
            accepted.append(f"{action} -> {r.status_code}")
    return accepted


@pytest.mark.parametrize("who", ["oncologist", "nurse", "admin_user"])
def test_every_form_refuses_a_post_without_the_csrf_token(request, clinic, who):
    user = request.getfixturevalue(who)
    client = Client()
    client.force_login(user)
    start = START + (["/admin/"] if user.is_staff else [])
    forms = _crawl(client, start)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    before = _everything_stored()

    accepted = _refused_without_token(strict, forms)

    assert accepted == []
    assert _everything_stored() == before
    assert "http://testserver/accounts/logout/" in forms or "/accounts/logout/" in {
        urlsplit(a).path for a in forms
    }


def test_the_walk_finds_the_clinical_forms(oncologist, clinic, cycle, draw):
    client = Client()
    client.force_login(oncologist)

    found = {urlsplit(action).path for action in _crawl(client, START)}

    pk = clinic["patient"].pk
    expected = {
        "/accounts/logout/",
        f"/cycles/{clinic['due'].pk}/acknowledge/",
        "/patients/new/",
        f"/patients/{pk}/edit/",
        f"/patients/{pk}/lines/new/",
        f"/patients/{pk}/draws/new/",
        f"/patients/{pk}/imaging/new/",
        f"/draws/{draw.pk}/edit/",
        f"/draws/{draw.pk}/entered-in-error/",
        f"/cycles/{cycle.pk}/edit/",
        "/accounts/mfa/setup/",
    }
    assert expected <= found, sorted(expected - found)


def test_the_sign_in_form_refuses_a_post_without_the_csrf_token(nurse):
    strict = Client(enforce_csrf_checks=True)

    r = strict.post("/accounts/login/", {"username": "nina", "password": "correct-horse-42"})

    assert r.status_code == 403
    assert "_auth_user_id" not in strict.session


@pytest.mark.parametrize("signed_in", [False, True])
def test_a_refused_post_is_in_the_access_log_and_says_what_to_do(nurse, signed_in):
    strict = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.1.2.3")
    if signed_in:
        strict.force_login(nurse)

    r = strict.post("/accounts/login/", {"username": "nina", "password": "correct-horse-42"})

    assert r.status_code == 403
    assert "Nothing was saved" in r.content.decode()
    event = AccessEvent.objects.get(action=AccessAction.PERMISSION_DENIED)
    assert event.outcome == AccessOutcome.DENIED
    assert event.target == "POST /accounts/login/ (CSRF check failed)"
    assert event.client_address == "10.1.2.3"
    assert event.user_id == (nurse.pk if signed_in else None)


def test_the_api_refuses_a_session_post_without_the_csrf_token(oncologist):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(oncologist)
    body = {
        "mrn": "CSRF-1",
        "given_name": "Ann",
        "family_name": "Lee",
        "birth_date": "1970-01-01",
        "sex": "female",
        "cancer_type": "breast",
    }

    r = strict.post("/api/v1/patients/", body, content_type="application/json")

    assert r.status_code == 403
    assert "CSRF" in r.json()["detail"]
    assert not apps.get_model("patients", "Patient").objects.filter(mrn="CSRF-1").exists()
