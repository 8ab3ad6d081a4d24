"""HEAD on a page or download answers like GET: the same status and headers, no body.

Django's `require_GET` and `require_http_methods(["GET", ...])` refuse HEAD with
405, while HTTP says a server that answers GET answers HEAD too (RFC 9110, 9.3.2).
Each URL is asked by someone who may read it; a refusal (403, a redirect to sign
in) must be the same for both methods as well.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.paths import ROOT

pytestmark = pytest.mark.django_db

# May differ between two requests for the same page: the access log page lists the
# GET's own event, a PDF carries its time, `Expires` is now; an export's file name
# carries the time to the second (its digits are compared as "#").
VOLATILE_HEADERS = {"Content-Length", "Expires"}
DIGITS = re.compile(r"\d")


@pytest.fixture
def urls(patient, line, cycle, draw) -> dict[str, list[str]]:
    """Who asks for what: each user, the GET pages and downloads they may open."""
    p = patient.pk
    return {
        "anonymous": ["/accounts/login/", "/", f"/patients/{p}/"],
        "nurse": [
            "/",
            "/patients/",
            f"/patients/{p}/",
            f"/patients/{p}/chart.svg",
            f"/patients/{p}/chart.png",
            f"/patients/{p}/report.pdf",
            f"/patients/{p}/draws.csv",  # refused to a nurse: refused to HEAD alike
            "/accounts/mfa/",
            "/accounts/mfa/setup/",
            "/accounts/password_change/",
            "/api/v1/patients/",
            "/api/v1/worklist/",
            "/fhir/r4/metadata",
        ],
        "oncologist": [
            f"/patients/{p}/draws.csv",
            "/exports/draws.csv",
            "/imports/csv/",
            "/patients/new/",
            f"/patients/{p}/edit/",
            f"/patients/{p}/lines/new/",
            f"/lines/{line.pk}/edit/",
            f"/lines/{line.pk}/cycles/new/",
            f"/cycles/{cycle.pk}/edit/",
            f"/patients/{p}/draws/new/",
            f"/draws/{draw.pk}/edit/",
            f"/patients/{p}/imaging/new/",
            f"/api/v1/draws/{draw.pk}/",
            "/audit/",  # staff only: refused alike
            "/staff/replicate-variation/",
        ],
        "staff": [
            "/audit/",
            "/audit/?format=csv",
            f"/audit/?patient={p}",
            "/staff/replicate-variation/",
        ],
    }


@pytest.fixture
def clients(nurse, oncologist, admin_user) -> dict[str, Client]:
    signed_in = {}
    for actor, user in {"nurse": nurse, "oncologist": oncologist, "staff": admin_user}.items():
        signed_in[actor] = Client()
        signed_in[actor].force_login(user)
    return {"anonymous": Client(), **signed_in}


def _headers(response) -> dict[str, str]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    if "Content-Disposition" in headers:
        headers["Content-Disposition"] = DIGITS.sub("#", headers["Content-Disposition"])
    return headers


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _difference(ask: Callable[[str, str], Any], url: str) -> list[str]:
    got, head = ask("GET", url), ask("HEAD", url)
    if head.status_code != got.status_code:
        return [f"HEAD {url}: {head.status_code}, GET {got.status_code}"]
    problems = []
    if differ := set(_headers(head).items()) ^ set(_headers(got).items()):
        problems.append(f"HEAD {url}: headers differ from GET's: {sorted(differ)}")
    if ("Content-Length" in head.headers) != ("Content-Length" in got.headers):
        problems.append(f"HEAD {url}: Content-Length on only one of HEAD and GET")
    if _body(head):
        problems.append(f"HEAD {url}: a body")
    return problems


def test_every_get_page_and_download_answers_head_like_get(urls, clients):
    problems = []

    for actor, actor_urls in urls.items():
        client = clients[actor]

        def ask(method: str, url: str, client: Client = client):
            return client.get(url) if method == "GET" else client.head(url)

        for url in actor_urls:
            problems += [f"{actor} {p}" for p in _difference(ask, url)]

    assert not problems, "\n".join(problems)


def test_head_of_a_chart_with_a_current_etag_is_not_modified(client, nurse, patient):
    client.force_login(nurse)
    etag = client.get(f"/patients/{patient.pk}/chart.svg")["ETag"]

    r = client.head(f"/patients/{patient.pk}/chart.svg", HTTP_IF_NONE_MATCH=etag)

    assert r.status_code == 304


METHOD_LISTS = re.compile(r"require_http_methods\(\s*\[([^\]]*)\]")


def test_no_view_allows_get_without_head():
    """For pages not listed above: `require_safe`, not `require_GET`; HEAD beside GET."""
    problems = []
    for source in sorted([*ROOT.glob("patients/**/*.py"), *ROOT.glob("ctctrack/**/*.py")]):
        text = source.read_text()
        where = source.relative_to(ROOT)
        if re.search(r"\brequire_GET\b", text):
            problems.append(f"{where}: require_GET refuses HEAD; use require_safe")
        for methods in METHOD_LISTS.findall(text):
            if '"GET"' in methods and '"HEAD"' not in methods:
                problems.append(f"{where}: require_http_methods([{methods}]) without HEAD")

    assert not problems, "\n".join(problems)
