"""What the access log records: every read of patient data and every sign-in event.

Each test asserts the row a privacy officer would look for: who, which
patient, what action, what outcome, from which address.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import path, reverse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.views import APIView

from ctctrack.urls import urlpatterns as project_urlpatterns
from patients import audit
from patients.audit import chain
from patients.models import AccessEvent, Patient
from tests import builders
from tests.builders import api_token

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.9"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()  # a cached chart must still be recorded, but start each test alike


def _event(action: str) -> AccessEvent:
    """The one event of this kind (sign-ins by force_login are left aside)."""
    (event,) = AccessEvent.objects.filter(action=action)
    return event


def _due_cycle(by, patient, days_ahead: int):
    today = timezone.localdate()
    line = builders.therapy_line(patient, by, start_date=today - timedelta(days=30))
    return builders.cycle(line, by, number=2, scheduled_date=today + timedelta(days=days_ahead))


# --- pages ---------------------------------------------------------------------------------


def test_the_patient_page_records_who_viewed_which_patient_and_from_where(client, nurse, patient):
    client.force_login(nurse)

    client.get(f"/patients/{patient.pk}/", REMOTE_ADDR=ADDRESS)

    event = _event("view")
    assert (event.user, event.username, event.patient) == (nurse, "nina", patient)
    assert (event.outcome, event.client_address) == ("success", ADDRESS)
    assert event.target == "patient page"
    assert event.at.tzinfo is not None


def test_the_target_never_names_the_patient(client, nurse, patient):
    client.force_login(nurse)

    client.get(f"/patients/{patient.pk}/")
    client.post("/patients/", {"q": "Doe"}, follow=True)

    for event in AccessEvent.objects.all():
        assert "Doe" not in event.target and "MRN0001" not in event.target


@pytest.mark.parametrize("name", ["chart.svg", "chart.png"])
def test_a_chart_is_recorded_also_when_answered_304(client, nurse, patient, name):
    client.force_login(nurse)
    first = client.get(f"/patients/{patient.pk}/{name}")

    again = client.get(f"/patients/{patient.pk}/{name}", HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304
    events = list(AccessEvent.objects.filter(action="chart").order_by("id"))
    assert [(e.patient, e.user, e.target) for e in events] == [
        (patient, nurse, name),
        (patient, nurse, f"{name} (not modified)"),
    ]


def test_the_report_is_recorded(client, nurse, patient):
    client.force_login(nurse)

    client.get(f"/patients/{patient.pk}/report.pdf")

    event = _event("report")
    assert (event.user, event.patient, event.target) == (nurse, patient, "report.pdf")


def test_a_form_about_a_patient_is_recorded_as_a_view(client, oncologist, patient):
    client.force_login(oncologist)

    client.get(f"/patients/{patient.pk}/edit/")

    event = _event("view")
    assert (event.user, event.patient) == (oncologist, patient)
    assert event.target == f"form /patients/{patient.pk}/edit/"


def test_the_worklist_records_the_ids_of_the_patients_it_showed(client, nurse, oncologist):
    first, second = builders.patient(oncologist), builders.patient(oncologist)
    _due_cycle(oncologist, first, 2)
    _due_cycle(oncologist, second, 3)
    client.force_login(nurse)

    client.get("/")

    event = _event("worklist")
    today = timezone.localdate()
    period = f"{today}..{today + timedelta(days=6)}"
    assert event.target == f"worklist {period}: patients {first.pk}, {second.pk}"
    assert (event.user, event.patient) == (nurse, None)


def _high_result(by, patient) -> None:
    builders.draw(patient, by, drawn_at=timezone.localdate() - timedelta(days=3), ctc_count=1)
    builders.draw(patient, by, drawn_at=timezone.localdate() - timedelta(days=1), ctc_count=40)


def test_the_results_to_review_record_the_ids_of_the_patients_they_showed(
    client, nurse, oncologist
):
    first, second = builders.patient(oncologist), builders.patient(oncologist)
    _high_result(oncologist, first)
    _high_result(oncologist, second)
    client.force_login(nurse)

    client.get(reverse("patients:results"))

    event = _event("results")
    assert event.target == f"results to review: patients {first.pk}, {second.pk}"
    assert (event.user, event.patient) == (nurse, None)


def test_the_api_results_to_review_are_recorded_with_the_patient_shown(
    api, nurse, oncologist, patient
):
    _high_result(oncologist, patient)
    api.force_authenticate(nurse)

    api.get("/api/v1/results-to-review/", REMOTE_ADDR=ADDRESS)

    event = _event("results")
    assert (event.user, event.patient, event.target) == (
        nurse,
        patient,
        "GET /api/v1/results-to-review/",
    )


def test_the_patient_list_records_the_patients_on_the_page_but_not_the_search(
    client, nurse, patient
):
    client.force_login(nurse)

    client.post("/patients/", {"q": "Doe"}, follow=True)

    event = _event("patient_list")
    assert event.target == "patient list page 1 (search)"
    assert event.patient == patient  # the one patient shown


# --- the API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/patients/{patient}/",
        "/api/v1/patients/{patient}/therapy-lines/",
        "/api/v1/therapy-lines/{line}/cycles/",
        "/api/v1/cycles/{cycle}/",
        "/api/v1/patients/{patient}/draws/",
        "/api/v1/draws/{draw}/",
        "/api/v1/patients/{patient}/imaging/",
        "/api/v1/patients/{patient}/assessment/",
        "/api/v1/cycles/{cycle}/acknowledgements/",
        "/api/v1/draws/{draw}/acknowledgements/",
    ],
)
def test_every_api_read_of_a_patient_is_recorded_with_the_patient(api, nurse, cycle, draw, url):
    patient = cycle.therapy_line.patient
    url = url.format(patient=patient.pk, line=cycle.therapy_line_id, cycle=cycle.pk, draw=draw.pk)
    api.force_authenticate(nurse)

    assert api.get(url, REMOTE_ADDR=ADDRESS).status_code == 200

    event = _event("api_read")
    assert (event.user, event.patient, event.outcome) == (nurse, patient, "success")
    assert (event.target, event.client_address) == (f"GET {url}", ADDRESS)


def test_an_api_list_of_patients_names_them_by_id(api, nurse, oncologist, patient):
    other = builders.patient(oncologist, given_name="John", family_name="Roe")
    api.force_authenticate(nurse)

    api.get("/api/v1/patients/", {"search": "o"})

    event = _event("api_read")
    ids = sorted([patient.pk, other.pk])
    assert event.target == f"GET /api/v1/patients/: patients {ids[0]}, {ids[1]}"
    assert event.patient is None


def test_the_api_worklist_is_recorded_as_a_worklist_read(api, nurse, oncologist, patient):
    _due_cycle(oncologist, patient, 1)
    api.force_authenticate(nurse)

    api.get("/api/v1/worklist/", {"from": timezone.localdate().isoformat(), "days": 7})

    event = _event("worklist")
    assert (event.user, event.patient) == (nurse, patient)
    assert event.target.startswith("GET /api/v1/worklist/ ")


def test_a_token_users_read_is_recorded_under_that_user(api, nurse, patient):
    token_key = api_token(nurse)

    api.get(f"/api/v1/patients/{patient.pk}/", HTTP_AUTHORIZATION=f"Token {token_key}")

    assert _event("api_read").user == nurse


def test_an_api_write_is_not_logged_as_a_read(api, oncologist, patient):
    api.force_authenticate(oncologist)

    api.patch(f"/api/v1/patients/{patient.pk}/", {"family_name": "Doe-Smith", "version": 1})

    assert not AccessEvent.objects.filter(action="api_read").exists()


# --- sign-in events -------------------------------------------------------------------------


def test_a_sign_in_is_recorded(client, nurse):
    client.post(
        reverse("login"), {"username": "nina", "password": "correct-horse-42"}, REMOTE_ADDR=ADDRESS
    )

    event = _event("login")
    assert (event.user, event.username, event.outcome) == (nurse, "nina", "success")
    assert event.client_address == ADDRESS


def test_a_failed_sign_in_is_recorded_with_the_username_as_typed(client, nurse):
    client.post(reverse("login"), {"username": "nina", "password": "nope"}, REMOTE_ADDR=ADDRESS)

    event = _event("login_failed")
    assert (event.user, event.username, event.outcome) == (None, "nina", "failed")
    assert event.client_address == ADDRESS


def test_a_lockout_is_recorded(client, nurse, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "nina", "password": "nope"}, REMOTE_ADDR=ADDRESS)

    event = _event("lockout")
    assert (event.user, event.username, event.outcome) == (None, "nina", "denied")
    assert event.client_address == ADDRESS


def test_a_sign_out_is_recorded(client, nurse):
    client.force_login(nurse)

    client.post(reverse("logout"), REMOTE_ADDR=ADDRESS)

    event = _event("logout")
    assert (event.user, event.outcome, event.client_address) == (nurse, "success", ADDRESS)


# --- refusals -------------------------------------------------------------------------------


def test_a_refused_page_is_recorded_as_permission_denied(client, outsider, patient):
    client.force_login(outsider)

    r = client.get(f"/patients/{patient.pk}/", REMOTE_ADDR=ADDRESS)

    assert r.status_code == 403
    assert b"You do not have access to this page" in r.content
    event = _event("permission_denied")
    assert (event.user, event.outcome, event.client_address) == (outsider, "denied", ADDRESS)
    assert event.target == f"GET /patients/{patient.pk}/"
    assert not AccessEvent.objects.filter(action="view").exists()


def test_a_refused_api_write_is_recorded(api, nurse, patient):
    api.force_authenticate(nurse)

    r = api.post(f"/api/v1/patients/{patient.pk}/draws/", {"ctc_count": 3})

    assert r.status_code == 403
    event = _event("permission_denied")
    assert (event.user, event.outcome) == (nurse, "denied")
    assert event.target == f"POST /api/v1/patients/{patient.pk}/draws/"


def test_an_anonymous_api_request_is_recorded_without_a_user(api, patient):
    r = api.get(f"/api/v1/patients/{patient.pk}/")

    assert r.status_code == 401
    event = _event("permission_denied")
    assert (event.user, event.username, event.outcome) == (None, "", "denied")


def test_a_wrong_token_is_recorded_as_a_failed_sign_in(api, patient):
    r = api.get(f"/api/v1/patients/{patient.pk}/", HTTP_AUTHORIZATION="Token not-a-token")

    assert r.status_code == 401
    assert _event("login_failed").outcome == "failed"


# A view that changes the record and is then refused: its change must be rolled
# back, its refusal kept. Served by this module as the URLconf of the tests below.


def _register_someone(by) -> None:
    builders.patient(by, mrn="ROLLED-BACK")


@login_required
def _register_then_refuse(request):
    _register_someone(request.user)
    raise PermissionDenied


class _RegisterThenRefuseApi(APIView):
    queryset = Patient.objects.none()  # RolePermission: POST needs add_patient

    def post(self, request):
        _register_someone(request.user)
        raise exceptions.PermissionDenied


urlpatterns = [
    path("refuse/", _register_then_refuse),
    path("api/refuse/", _RegisterThenRefuseApi.as_view()),
    *project_urlpatterns,  # the 403 page links to them
]
handler403 = "patients.audit.views.permission_denied"


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", ["/refuse/", "/api/refuse/"])
def test_a_refusal_is_recorded_although_the_request_is_rolled_back(oncologist, url):
    client = Client()
    client.force_login(oncologist)

    r = client.post(url)

    assert r.status_code == 403
    assert not Patient.objects.filter(mrn="ROLLED-BACK").exists()
    event = _event("permission_denied")
    assert (event.user, event.target) == (oncologist, f"POST {url}")
    assert chain.verify_chain() is None


# --- client addresses and the record() contract --------------------------------------------


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(client, nurse, patient):
    client.force_login(nurse)

    client.get(
        f"/patients/{patient.pk}/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )

    assert _event("view").client_address == "10.0.0.1"


def test_behind_one_trusted_proxy_the_last_forwarded_address_is_the_client(
    client, nurse, patient, settings
):
    settings.CTCTRACK_TRUSTED_PROXY_COUNT = 1
    client.force_login(nurse)

    client.get(
        f"/patients/{patient.pk}/",
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7",  # the first was sent by the client
    )

    assert _event("view").client_address == "198.51.100.7"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("2001:DB8::1", "2001:db8::1"), ("::ffff:10.0.0.1", "::ffff:10.0.0.1"), ("junk", None)],
)
def test_addresses_are_stored_as_the_database_gives_them_back(client, nurse, patient, sent, stored):
    client.force_login(nurse)

    client.get(f"/patients/{patient.pk}/", REMOTE_ADDR=sent)

    assert AccessEvent.objects.get(action="view").client_address == stored
    assert chain.verify_chain() is None  # the hash covers what was read back


def test_record_outside_a_request_writes_at_once(nurse, patient):
    event = audit.record(None, "export", patient=patient, user=nurse, target="nightly export")

    assert event.pk is not None
    assert AccessEvent.objects.get().client_address is None


def test_record_refuses_an_unknown_action(nurse):
    with pytest.raises(ValueError, match="Unknown access action"):
        audit.record(None, "peek", user=nurse)


def test_a_page_costs_one_insert_into_the_log(client, nurse, patient):
    inserts = []

    def watch(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "patients_accessevent"'):
            inserts.append(sql)
        return execute(sql, params, many, context)

    client.force_login(nurse)

    with connection.execute_wrapper(watch):
        client.get(f"/patients/{patient.pk}/")

    assert len(inserts) == 1


def test_an_event_time_is_utc_and_now(nurse):
    before = datetime.now(UTC)

    event = audit.record(None, "view", user=nurse)

    assert before <= AccessEvent.objects.get(pk=event.pk).at <= datetime.now(UTC)
