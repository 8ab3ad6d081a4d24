"""Who may open what: every URL the project resolves, for every actor and method.

The URL patterns are walked from the resolver, so a new page is tested the
moment it exists, and a page missing from `ACCESS` fails the suite until
someone decides, in that table, who may read and who may write it.
Each `<int:...>` in a route is filled with the id of a real object of the kind
the route names (`patients/<int:pk>/` gets the patient's id).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import SESSION_KEY
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from patients import audit, services
from patients.models import AccessAction, ApiToken, CareTeam, Patient
from tests import builders
from tests.admin_urls import AdminRoute, admin_routes
from tests.builders import api_token

pytestmark = pytest.mark.django_db

# --- the cast -------------------------------------------------------------------------

ANONYMOUS = "anonymous"
NO_ROLE = "no role"
NURSE = "nurse"
ONCOLOGIST = "oncologist"
STAFF = "staff"
ACTORS = (ANONYMOUS, NO_ROLE, NURSE, ONCOLOGIST, STAFF)

EVERYONE = frozenset(ACTORS)
SIGNED_IN = EVERYONE - {ANONYMOUS}
CLINICIANS = frozenset({NURSE, ONCOLOGIST, STAFF})
WRITERS = frozenset({ONCOLOGIST, STAFF})
STAFF_ONLY = frozenset({STAFF})
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    """Who gets a page (GET) and who may send its write methods.

    A method a URL does not list (including GET when `read` is NOBODY) must be
    refused to everyone.
    """

    read: frozenset[str] = NOBODY
    write: frozenset[str] = NOBODY
    write_methods: tuple[str, ...] = ()
    # what a permitted GET answers; a page that only passes through may redirect
    read_answers: frozenset[int] = frozenset({200})
    # what a permitted write answers to the matrix's empty or invalid body
    write_answers: frozenset[int] = frozenset({200, 201, 302, 400})
    # the query string a read needs, with {kind} placeholders for ids
    query: str = ""


def page(read: frozenset[str]) -> Rule:
    return Rule(read=read)


def form(who: frozenset[str]) -> Rule:
    return Rule(read=who, write=who, write_methods=("POST",))


def post_only(who: frozenset[str]) -> Rule:
    return Rule(write=who, write_methods=("POST",))


def api_list(read: frozenset[str], write: frozenset[str]) -> Rule:
    return Rule(read=read, write=write, write_methods=("POST",))


def api_detail(read: frozenset[str], write: frozenset[str]) -> Rule:
    return Rule(read=read, write=write, write_methods=("PATCH",))


# url name -> who may read, who may write. Add a row for every new URL.
ACCESS: dict[str, Rule] = {
    # signing in and out: the only things an anonymous user may reach
    # (Django's form views handle PUT as POST; its body never reaches request.POST, so a
    # PUT only shows the empty form again.)
    "login": Rule(read=EVERYONE, write=EVERYONE, write_methods=("POST", "PUT")),
    "logout": post_only(EVERYONE),
    "api:token": post_only(EVERYONE),
    # the load balancer's probes: anyone may ask, the answer is one word and nothing else
    "healthz": page(EVERYONE),
    "readyz": page(EVERYONE),
    "password_change": Rule(read=SIGNED_IN, write=SIGNED_IN, write_methods=("POST", "PUT")),
    "password_change_done": page(SIGNED_IN),
    # the clinicians' pages
    "patients:worklist": page(CLINICIANS),
    "patients:acknowledge": post_only(CLINICIANS),
    # results to review: a nurse's morning starts here too; nurses acknowledge as well
    "patients:results": page(CLINICIANS),
    "patients:acknowledge-result": post_only(CLINICIANS),
    "patients:list": form(CLINICIANS),  # GET the list, POST a search (kept out of the URL)
    "patients:detail": page(CLINICIANS),
    "patients:chart-svg": page(CLINICIANS),
    "patients:chart-png": page(CLINICIANS),
    "patients:report": page(CLINICIANS),
    "patients:create": form(WRITERS),
    "patients:edit": form(WRITERS),
    "patients:line-create": form(WRITERS),
    "patients:line-edit": form(WRITERS),
    "patients:cycle-create": form(WRITERS),
    "patients:cycles-plan": form(WRITERS),
    "patients:cycle-edit": form(WRITERS),
    "patients:draw-create": form(WRITERS),
    "patients:draw-edit": form(WRITERS),
    "patients:draw-error": post_only(WRITERS),
    "patients:imaging-create": form(WRITERS),
    "patients:imaging-edit": form(WRITERS),
    "patients:imaging-error": post_only(WRITERS),
    # CSV import and export: oncologists (exports hold every draw of every patient)
    "patients:csv-upload": form(WRITERS),
    "patients:csv-confirm": post_only(WRITERS),
    "patients:csv-export-patient": page(WRITERS),
    "patients:csv-export-all": form(WRITERS),  # GET asks why; POST exports
    # the replicate-variation estimate: every patient's tubes as one figure, for staff
    "patients:replicate-variation": page(STAFF_ONLY),
    # JSON API v1
    "api:patient-list": api_list(CLINICIANS, WRITERS),
    "api:patient-detail": api_detail(CLINICIANS, WRITERS),
    "api:therapy-line-list": api_list(CLINICIANS, WRITERS),
    "api:cycle-list": api_list(CLINICIANS, WRITERS),
    "api:cycle-detail": api_detail(CLINICIANS, WRITERS),
    "api:draw-list": api_list(CLINICIANS, WRITERS),
    "api:draw-detail": api_detail(CLINICIANS, WRITERS),
    "api:draw-entered-in-error": post_only(WRITERS),
    "api:imaging-list": api_list(CLINICIANS, WRITERS),
    "api:imaging-detail": api_detail(CLINICIANS, WRITERS),
    "api:imaging-entered-in-error": post_only(WRITERS),
    "api:patient-assessment": page(CLINICIANS),
    "api:worklist": page(CLINICIANS),
    "api:acknowledgement-list": api_list(CLINICIANS, CLINICIANS),
    "api:results-to-review": page(CLINICIANS),
    "api:result-acknowledgement-list": api_list(CLINICIANS, CLINICIANS),
    "api:hl7-oru": post_only(WRITERS),
    # FHIR R4 reads; the CapabilityStatement is public (clients read it before signing
    # in; it holds no patient data)
    "fhir:metadata": page(EVERYONE),
    "fhir:patient": page(CLINICIANS),
    "fhir:observation": page(CLINICIANS),
    "fhir:observation-search": Rule(read=CLINICIANS, query="patient={patient}"),
    # (the search by POST takes a form-encoded body only: the matrix's JSON body is 415)
    "fhir:observation-search-post": Rule(
        write=CLINICIANS, write_methods=("POST",), write_answers=frozenset({415})
    ),
    # a second factor: every signed-in user manages their own
    "mfa:overview": page(SIGNED_IN),
    "mfa:setup": form(SIGNED_IN),
    # (the second sign-in step: a user with no second factor to check is sent on)
    "mfa:verify": Rule(
        read=SIGNED_IN,
        write=SIGNED_IN,
        write_methods=("POST",),
        read_answers=frozenset({200, 302}),
    ),
    "mfa:recovery-codes": post_only(SIGNED_IN),
    # every signed-in user issues and revokes their own API tokens (an empty POST: 400)
    "patients:api-tokens": form(SIGNED_IN),
    "mfa:disable": post_only(SIGNED_IN),
    # the access log's report: its filter form posts, then redirects to the filtered page
    "audit:report": form(STAFF_ONLY),
}

# Django admin's pages are left out of the walk over the URL patterns above: they are
# walked with real rows, every registered model and every method, in the admin section at
# the end of this file (test_each_actor_gets_what_admin_allows).
ADMIN_NAMESPACE = "admin"

LOGIN_URL = "/accounts/login/"
API_PREFIXES = ("api/", "fhir/")
# Login endpoints answer anonymous users by design: that is how one signs in.
SIGN_IN = frozenset({"login", "api:token"})
# The other exceptions (docs/security.md): a load balancer has no account, and the
# answer is one word: it carries no data and reads no session.
NO_DATA_PROBES = {"healthz": b"ok", "readyz": b"ready"}
# FHIR's CapabilityStatement: what the server does, no patient data (docs/security.md).
PUBLIC_STATEMENTS = frozenset({"fhir:metadata"})
# Methods tried on every URL; unless its row lists them, everyone must be refused.
UNLISTED_METHODS = ("PUT", "DELETE")

# --- walking the URL patterns ------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    route: str
    params: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        """Answers programs (401 to anonymous callers) rather than browsers (a login page)."""
        return self.route.startswith(API_PREFIXES)


def walk(patterns: list, prefix: str = "", namespace: str = "") -> Iterator[Endpoint]:
    """Every URL pattern under `patterns`, with its full route and namespaced name."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from walk(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            name = ":".join(filter(None, [namespace, pattern.name or "<unnamed>"]))
            params = tuple(pattern.pattern.regex.groupindex)
            yield Endpoint(name=name, route=route, params=params)


def project_endpoints() -> list[Endpoint]:
    """Every URL of the project, Django admin's internal pages left out (see ADMIN_NAMESPACE)."""
    found = walk(get_resolver().url_patterns)
    return sorted(
        (e for e in found if not e.name.startswith(f"{ADMIN_NAMESPACE}:")), key=lambda e: e.name
    )


CHECKED = project_endpoints()

# The kind of object an id stands for, from the kwarg name or the route segment before it.
KINDS = {
    "patient": "patient",
    "patients": "patient",
    "line": "line",
    "lines": "line",
    "therapy-lines": "line",
    "cycle": "cycle",
    "cycles": "cycle",
    "draw": "draw",
    "draws": "draw",
    "imaging": "imaging",
    "observation": "draw",  # FHIR: a CTC count is an Observation
}


def kind_of(endpoint: Endpoint, param: str) -> str:
    """Which fixture object fills `param`, or a failure saying how to teach the test."""
    named = param.removesuffix("_pk").removesuffix("_id")
    if named in KINDS:
        return KINDS[named]
    before = re.search(rf"([\w-]+)/<(?:\w+:)?{param}>", endpoint.route)
    segment = before.group(1).lower() if before else ""
    if segment in KINDS:
        return KINDS[segment]
    pytest.fail(
        f"Cannot fill <{param}> of {endpoint.name} ({endpoint.route}): add its kind to KINDS "
        "in tests/security/test_access_matrix.py."
    )


def url_of(endpoint: Endpoint, ids: dict[str, int]) -> str:
    kwargs = {p: ids[kind_of(endpoint, p)] for p in endpoint.params}
    rule = ACCESS.get(endpoint.name)
    query = rule.query.format(**ids) if rule and rule.query else ""
    return reverse(endpoint.name, kwargs=kwargs) + (f"?{query}" if query else "")


# --- requests -------------------------------------------------------------------------


@pytest.fixture
def ids(patient, line, cycle, draw, oncologist) -> dict[str, int]:
    imaging = services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 3), modality="ct", response="SD"
    )
    return {
        "patient": patient.pk,
        "line": line.pk,
        "cycle": cycle.pk,
        "draw": draw.pk,
        "imaging": imaging.pk,
    }


class Caller:
    """One actor's browser.

    Write bodies are empty or invalid on purpose: an allowed writer gets 400 (or a
    redirect) and nothing changes, which keeps every row of the matrix independent.
    """

    def __init__(self, user: Any, client: Client) -> None:
        self.user = user
        self.client = client
        client.cookies.clear()  # nothing carried over from the previous test

    def send(self, method: str, endpoint: Endpoint, url: str) -> HttpResponse:
        if self.user is not None and SESSION_KEY not in self.client.session:
            self.client.force_login(self.user)  # at first, and again after signing out
        if endpoint.is_api:
            body = '{"version": "not a number"}' if method == "PATCH" else "{}"
            return self.client.generic(method, url, body, content_type="application/json")
        if method == "GET":
            return self.client.get(url)
        form = "application/x-www-form-urlencoded"
        return self.client.generic(method, url, "", content_type=form)


@pytest.fixture(scope="module")
def browsers() -> dict[str, Client]:
    """One client per actor for the whole module: a new client loads every middleware again."""
    return {actor: Client() for actor in ACTORS}


@pytest.fixture
def callers(browsers, oncologist, nurse, outsider, admin_user) -> dict[str, Caller]:
    users = {
        ANONYMOUS: None,
        NO_ROLE: outsider,
        NURSE: nurse,
        ONCOLOGIST: oncologist,
        STAFF: admin_user,
    }
    return {actor: Caller(user, browsers[actor]) for actor, user in users.items()}


def clinical_fingerprint() -> tuple[int, ...]:
    """Row counts of every clinical model, of its change history and of the patients' care
    teams, in one query."""
    app = list(apps.get_app_config("patients").get_models())
    clinical = [m for m in app if hasattr(m._meta, "simple_history_manager_attribute")]
    histories = [m for m in app if m.__name__.startswith("Historical")]
    tables = [m._meta.db_table for m in [*clinical, *histories]] + [
        Patient.care_teams.through._meta.db_table
    ]
    counts = (f"(SELECT COUNT(*) FROM {connection.ops.quote_name(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(counts))
        return tuple(cursor.fetchone())


def refusal_problem(actor: str, endpoint: Endpoint, response) -> str | None:
    """Why `response` is not a refusal of a method the actor may not use, if it is not."""
    status = response.status_code
    if actor == ANONYMOUS and not endpoint.is_api:
        to_login = status == 302 and response["Location"].startswith(LOGIN_URL)
        return None if to_login or status == 405 else f"{status}, not a redirect to login"
    if actor == ANONYMOUS:
        return None if status in (401, 405) else f"{status}, not 401"
    return None if status in (403, 405) else f"{status}, not 403"


def expected_problem(
    rule: Rule, actor: str, method: str, endpoint: Endpoint, response
) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{status}: a server error"
    listed = bool(rule.read) if method == "GET" else method in rule.write_methods
    if not listed:
        return refusal_problem(actor, endpoint, response)
    allowed = rule.read if method == "GET" else rule.write
    if actor not in allowed:
        return refusal_problem(actor, endpoint, response)
    if method == "GET":
        return None if status in rule.read_answers else f"{status}, not {rule.read_answers}"
    return None if status in rule.write_answers else f"{status}, not accepted"


def status_refused(response) -> bool:
    """Whether the answer turned the request away (which must leave the record alone)."""
    return response.status_code in (302, 401, 403, 405) and (
        response.status_code != 302 or response["Location"].startswith(LOGIN_URL)
    )


# --- the tests ------------------------------------------------------------------------


def test_every_url_pattern_is_in_the_access_table():
    walked = {e.name for e in CHECKED}

    missing = sorted(walked - set(ACCESS))
    stale = sorted(set(ACCESS) - walked)

    assert not missing, f"URLs with no row in ACCESS (decide who may use them): {missing}"
    assert not stale, f"Rows in ACCESS for URLs that no longer exist: {stale}"


@pytest.mark.parametrize("endpoint", CHECKED, ids=lambda e: e.name)
def test_each_actor_gets_what_the_access_table_says(endpoint, ids, callers):
    rule = ACCESS.get(endpoint.name)
    if rule is None:
        pytest.fail(f"{endpoint.name} ({endpoint.route}) has no row in ACCESS: add one.")
    url = url_of(endpoint, ids)
    methods = ["GET", *rule.write_methods, *UNLISTED_METHODS]
    problems = []
    record = clinical_fingerprint()

    for actor in ACTORS:
        for method in methods:
            response = callers[actor].send(method, endpoint, url)
            problem = expected_problem(rule, actor, method, endpoint, response)
            if problem:
                problems.append(f"{actor} {method} {url}: {problem}")
            before, record = record, clinical_fingerprint()
            if status_refused(response) and record != before:
                problems.append(f"{actor} {method} {url}: refused, but the record changed")

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("endpoint", CHECKED, ids=lambda e: e.name)
def test_nobody_but_the_login_page_answers_an_anonymous_user(endpoint, ids, browsers):
    """Independent of ACCESS: holds for a page nobody has classified yet."""
    url = url_of(endpoint, ids)
    anonymous = Caller(None, browsers[ANONYMOUS])

    for method in ("GET", "POST", "PATCH", *UNLISTED_METHODS):
        response = anonymous.send(method, endpoint, url)

        if endpoint.name in SIGN_IN:
            assert response.status_code < 500, f"{method} {url}"
        elif endpoint.name in NO_DATA_PROBES and method == "GET":
            answer = (200, NO_DATA_PROBES[endpoint.name])
            assert (response.status_code, response.content) == answer, f"{method} {url}"
        elif endpoint.name in PUBLIC_STATEMENTS and method == "GET":
            assert response.status_code == 200, f"{method} {url}"
            assert response.json()["resourceType"] == "CapabilityStatement"
        else:
            assert refusal_problem(ANONYMOUS, endpoint, response) is None, (
                f"{method} {url} answered an anonymous user with {response.status_code}"
            )


def test_django_admin_answers_staff_only(client, nurse, admin_user):
    url = reverse("admin:index")
    anonymous = client.get(url)
    client.force_login(nurse)
    clinician = client.get(url)
    client.force_login(admin_user)
    staff = client.get(url)

    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert clinician.status_code == 302 and clinician["Location"].startswith("/admin/login/")
    assert staff.status_code == 200


def test_a_signed_in_user_without_a_role_sees_no_patient_data(client, outsider, ids):
    client.force_login(outsider)

    response = client.get(f"/patients/{ids['patient']}/")

    assert response.status_code == 403
    assert b"Doe" not in response.content and b"MRN0001" not in response.content


def test_a_request_for_an_unknown_id_is_404_not_a_server_error(client, nurse, draw):
    client.force_login(nurse)

    assert client.get("/patients/999999/").status_code == 404
    assert client.get("/api/v1/draws/999999/").status_code == 404


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_static_files_are_served_to_anonymous_users():
    """The one other thing an anonymous browser needs: the login page's stylesheet.

    WhiteNoise serves static files before any URL pattern; in tests it reads them
    from the source folders (production serves the collected, hashed copies).
    """
    response = Client().get("/static/css/app.css")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")


# --- care teams: another team's patient is an unknown id, on every URL ----------------------
# With two teams, the cast's nurse and oncologist and the cast's patient in North, and a
# second patient with one of each record in South: every URL that names a patient or one
# of their records answers 404 to North's users for South's (whatever the method), and
# what the table above says for their own; staff see both.

PATIENT_SCOPED = [e for e in CHECKED if e.params or (e.name in ACCESS and ACCESS[e.name].query)]


@pytest.fixture
def south_ids(ids, nurse, oncologist) -> dict[str, int]:
    south_patient = builders.patient(oncologist, mrn="SOUTH-1", family_name="Southern")
    line = builders.therapy_line(south_patient, oncologist, start_date=date(2026, 1, 5))
    cycle = builders.cycle(line, oncologist, number=1, scheduled_date=date(2026, 1, 5))
    draw = builders.draw(south_patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=3)
    imaging = services.record_imaging(
        patient=south_patient,
        by=oncologist,
        performed_on=date(2026, 1, 3),
        modality="ct",
        response="SD",
    )
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    north.members.add(nurse, oncologist)
    services.teams.add_patients_to_team(north, [Patient.objects.get(pk=ids["patient"])], by=None)
    services.teams.add_patients_to_team(south, [south_patient], by=None)
    return {
        "patient": south_patient.pk,
        "line": line.pk,
        "cycle": cycle.pk,
        "draw": draw.pk,
        "imaging": imaging.pk,
    }


def test_every_url_naming_a_patient_is_walked_for_care_teams():
    names = {e.name for e in PATIENT_SCOPED}

    assert {"patients:detail", "api:patient-detail", "fhir:patient", "patients:report"} <= names
    assert {"patients:csv-export-patient", "fhir:observation-search"} <= names


@pytest.mark.parametrize("endpoint", PATIENT_SCOPED, ids=lambda e: e.name)
def test_a_user_of_one_team_gets_404_for_every_patient_of_another(
    endpoint, ids, south_ids, callers
):
    rule = ACCESS[endpoint.name]
    own, other = url_of(endpoint, ids), url_of(endpoint, south_ids)
    problems = []
    record = clinical_fingerprint()

    for actor in (NURSE, ONCOLOGIST, STAFF):
        for method in ["GET", *rule.write_methods]:
            allowed = rule.read if method == "GET" else rule.write
            listed = bool(rule.read) if method == "GET" else True
            if not listed or actor not in allowed:
                continue
            mine = callers[actor].send(method, endpoint, own)
            if problem := expected_problem(rule, actor, method, endpoint, mine):
                problems.append(f"{actor} {method} {own} (own team): {problem}")
            theirs = callers[actor].send(method, endpoint, other)
            if actor == STAFF:
                problem = expected_problem(rule, actor, method, endpoint, theirs)
                if problem:
                    problems.append(f"staff {method} {other}: {problem}")
            elif theirs.status_code != 404:
                problems.append(f"{actor} {method} {other}: {theirs.status_code}, not 404")
            elif b"Southern" in theirs.content or b"SOUTH-1" in theirs.content:
                problems.append(f"{actor} {method} {other}: the 404 names the patient")
            before, record = record, clinical_fingerprint()
            if theirs.status_code == 404 and record != before:
                problems.append(f"{actor} {method} {other}: 404, but the record changed")

    assert not problems, "\n".join(problems)


# --- Django admin: every page of every registered model, with every method --------------
# (The walk above leaves admin out; this one walks admin.site itself, so a model
# registered tomorrow is covered.) Staff only; for a model of the `patients` app
# (the clinical record and the access log) staff read and nothing else: every
# write is refused with 403 (tests/security/test_admin_readonly.py posts real forms there).
# Accounts (users, groups, devices, tokens, lockouts) stay for staff to manage.

ADMIN_ROUTES = admin_routes()
ADMIN_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ADMIN_READS = ("GET", "HEAD")
ADMIN_LOGIN = "/admin/login/"
# Admin's sign-in and sign-out answer everyone, as the site's own do (sign-out sends
# someone not signed in to admin's front page); its catch-all answers "not found".
ADMIN_OPEN_ROUTES = frozenset({"login/", "logout/", "(?P<url>.*)$"})
UNKNOWN_ID = 999_999


def is_read_only_in_admin(route: AdminRoute) -> bool:
    # API tokens are credentials, not the record: staff revoke them with a changelist action
    # (tests/security/test_api_tokens.py shows that nobody adds, changes or reads a key).
    # Care teams are staff's to manage; a patient's teams change through the services
    # (tests/records/test_care_teams.py).
    return (
        route.model is not None
        and route.model._meta.app_label == "patients"
        and route.model not in (ApiToken, CareTeam)
    )


@pytest.fixture
def admin_objects(ids, oncologist, django_user_model) -> dict[type, int]:
    """One row of every model admin lists, where one can be made without a real sign-in."""
    # Someone with no role and unconfirmed devices: no actor's sign-in changes.
    devon = django_user_model.objects.create_user("devon", password="correct-horse-42")
    TOTPDevice.objects.create(user=devon, name="phone", confirmed=False)
    StaticDevice.objects.create(user=devon, name="backup", confirmed=False)
    api_token(devon)
    seen = {"user_agent": "test", "ip_address": "192.0.2.1", "username": "devon"}
    AccessAttempt.objects.create(
        **seen, http_accept="*/*", path_info="/", get_data="", post_data="", failures_since_start=1
    )
    AccessLog.objects.create(**seen, http_accept="*/*", path_info="/")
    AccessFailureLog.objects.create(**seen, http_accept="*/*", path_info="/")
    audit.record(None, AccessAction.VIEW, user=oncologist, target="admin access test")
    rows = {}
    for model in admin.site._registry:
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        rows[model] = UNKNOWN_ID if first is None else first
    return rows


def admin_url(route: AdminRoute, objects: dict[type, int], ids: dict[str, int]) -> str:
    """The route filled with a real row of its model (and, for a version page, its version)."""
    patient_type = ContentType.objects.get_for_model(Patient)
    values: dict[str, object] = {
        "app_label": "patients",
        "url": "no-such-page/",
        "content_type_id": patient_type.pk,
        "object_id": ids["patient"],
    }
    if route.model is not None:
        pk = objects[route.model]
        values |= {"object_id": pk, "id": pk, "pk": pk}
        if "history_id" in route.parameters():
            versions = route.model.history.filter(**{route.model._meta.pk.attname: pk})
            values["history_id"] = versions.values_list("history_id", flat=True).first()
    return route.path(values)


def admin_problem(route: AdminRoute, actor: str, method: str, response) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{status}: a server error"
    if str(route.route) in ADMIN_OPEN_ROUTES:
        return None
    if actor != STAFF:
        to_login = status == 302 and response["Location"].startswith(ADMIN_LOGIN)
        return None if to_login or status == 403 else f"{status}, not refused"
    if not is_read_only_in_admin(route):
        return None
    if method not in ADMIN_READS:
        return None if status == 403 else f"{status}, not 403: the clinical record is read-only"
    # a page, `<id>/` leading on to it, or (adding, deleting) a refusal
    return None if status in (200, 302, 403) else f"{status}, not 200, 302 or 403"


def test_admin_pages_of_every_registered_model_are_walked():
    walked = {route.model for route in ADMIN_ROUTES}

    assert set(admin.site._registry) <= walked
    assert any(is_read_only_in_admin(route) for route in ADMIN_ROUTES)


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=str)
def test_each_actor_gets_what_admin_allows(route, ids, admin_objects, callers):
    url = admin_url(route, admin_objects, ids)
    endpoint = Endpoint(name=str(route), route=url.removeprefix("/"), params=())
    problems = []
    record = clinical_fingerprint()

    for actor in ACTORS:
        for method in ADMIN_METHODS:
            response = callers[actor].send(method, endpoint, url)
            if problem := admin_problem(route, actor, method, response):
                problems.append(f"{actor} {method} {url}: {problem}")
        before, record = record, clinical_fingerprint()
        if record != before:
            problems.append(f"{actor} {url}: the clinical record changed")

    assert not problems, "\n".join(problems)
