"""/audit/: the staff-only report over the access log, its filters, sorting and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients import audit
from patients.audit import chain
from patients.models import AccessEvent

pytestmark = pytest.mark.django_db

URL = "/audit/"


@pytest.fixture
def log(nurse, oncologist, patient, monkeypatch):
    """Four events on three days of March 2020, two by the nurse, one failed sign-in.

    Long before the sign-ins of the test itself, which a date filter leaves out.
    """
    times = iter(
        [
            datetime(2020, 3, 1, 8, 0, tzinfo=UTC),
            datetime(2020, 3, 2, 9, 0, tzinfo=UTC),
            datetime(2020, 3, 2, 23, 59, tzinfo=UTC),
            datetime(2020, 3, 3, 7, 0, tzinfo=UTC),
        ]
    )
    monkeypatch.setattr(chain, "timezone", SimpleNamespace(now=lambda: next(times)))
    events = [
        audit.record(None, "login", user=nurse),
        audit.record(None, "view", user=nurse, patient=patient, target="patient page"),
        audit.record(None, "report", user=oncologist, patient=patient, target="report.pdf"),
        audit.record(None, "login_failed", username="=HYPERLINK(1)", outcome="failed"),
    ]
    monkeypatch.undo()
    return events


def _ids(response) -> list[int]:
    return [event.pk for event in response.context["page"].object_list]


# --- who may see it -------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_login(client):
    assertRedirects(client.get(URL), f"/accounts/login/?next={URL}", fetch_redirect_response=False)


@pytest.mark.parametrize("who", ["nurse", "oncologist", "outsider"])
def test_it_refuses_non_staff_and_records_the_refusal(client, request, who):
    user = request.getfixturevalue(who)
    client.force_login(user)

    r = client.get(URL)

    assert r.status_code == 403
    refusal = AccessEvent.objects.get(action="permission_denied")
    assert (refusal.user, refusal.target, refusal.outcome) == (user, f"GET {URL}", "denied")


def test_staff_see_every_event_newest_first(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL)

    assert r.status_code == 200
    recent = [e for e in _ids(r) if e in {x.pk for x in log}]
    assert recent == [e.pk for e in reversed(log)]
    assertContains(r, '<th scope="col" aria-sort="descending">', html=False)
    assertContains(r, "Audit log")  # the nav link for staff


def test_looking_at_the_report_is_itself_recorded(client, admin_user, log, patient):
    client.force_login(admin_user)

    client.get(URL, {"patient": patient.pk})

    seen = AccessEvent.objects.get(action="audit_report")
    assert (seen.user, seen.patient) == (admin_user, patient)
    assert seen.target == f"audit report page 1 patient={patient.pk}&sort=-at"


def test_the_nav_link_is_for_staff_only(client, nurse):
    client.force_login(nurse)

    assertNotContains(client.get("/patients/"), 'href="/audit/"')


# --- filters --------------------------------------------------------------------------------


def test_it_filters_by_utc_dates_including_the_whole_last_day(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL, {"from": "2020-03-02", "to": "2020-03-02"})

    assert _ids(r) == [log[2].pk, log[1].pk]


def test_it_filters_by_user_patient_and_action(client, admin_user, log, patient):
    client.force_login(admin_user)

    by_user = client.get(URL, {"user": "nina", "to": "2020-03-31"})
    by_patient = client.get(URL, {"patient": patient.pk, "to": "2020-03-31"})
    by_action = client.get(URL, {"action": "report"})

    assert _ids(by_user) == [log[1].pk, log[0].pk]
    assert _ids(by_patient) == [log[2].pk, log[1].pk]
    assert _ids(by_action) == [log[2].pk]


def test_an_mrn_is_turned_into_the_patient_id_so_it_never_sits_in_a_url(
    client, admin_user, log, patient
):
    client.force_login(admin_user)

    r = client.post(URL, {"mrn": "MRN0001", "action": "view"})

    assertRedirects(r, f"{URL}?patient={patient.pk}&action=view", fetch_redirect_response=False)


def test_bad_filters_are_named_and_nothing_is_filtered(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL, {"from": "2020-03-05", "to": "2020-03-01", "patient": "999999"})

    assert r.status_code == 400
    assert r.context["form"].errors == {
        "to": ["The end date cannot be before the start date."],
        "patient": ["No patient has this id."],
    }
    assert "page" not in r.context


def test_an_unknown_mrn_is_named(client, admin_user):
    client.force_login(admin_user)

    r = client.post(URL, {"mrn": "NOBODY"})

    assert r.status_code == 400
    assertContains(r, "No patient has this MRN.", status_code=400)


def test_the_filter_form_is_labelled(client, admin_user):
    client.force_login(admin_user)

    r = client.get(URL)

    for name, label in [("from", "From (UTC)"), ("to", "To (UTC), inclusive"), ("mrn", "or MRN")]:
        assertContains(r, f'<label for="id_{name}">{label}:</label>', html=True)


# --- sorting and paging ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("at", [0, 1, 2, 3]),
        ("-at", [3, 2, 1, 0]),
        ("user", [3, 0, 1, 2]),  # "=HYPERLINK(1)", nina, nina, olivia
        ("-user", [2, 1, 0, 3]),
        ("action", [0, 3, 2, 1]),  # login, login_failed, report, view
        ("outcome", [3, 0, 1, 2]),
        ("id", [0, 1, 2, 3]),
    ],
)
def test_it_sorts_on_any_column_both_ways(client, admin_user, log, sort, expected):
    client.force_login(admin_user)

    r = client.get(URL, {"sort": sort, "to": "2020-03-31"})

    assert _ids(r) == [log[i].pk for i in expected]


def test_an_unknown_sort_falls_back_to_newest_first(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL, {"sort": "hash; DROP TABLE x", "to": "2020-03-31"})

    assert _ids(r) == [e.pk for e in reversed(log)]


def test_each_heading_links_to_sorting_by_it(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL, {"user": "nina", "sort": "user"})

    assertContains(r, 'href="?user=nina&amp;sort=-user"')  # sorted: the other way round
    assertContains(r, 'href="?user=nina&amp;sort=action"')
    assertContains(r, 'aria-sort="ascending"')


def test_it_pages_by_fifty(client, admin_user, nurse):
    for i in range(55):
        audit.record(None, "view", user=nurse, target=f"page {i}")
    client.force_login(admin_user)

    first = client.get(URL, {"action": "view"})
    second = client.get(URL, {"action": "view", "page": 2})

    assert len(_ids(first)) == 50 and len(_ids(second)) == 5
    assertContains(first, "Page 1 of 2")
    assertContains(first, 'href="?action=view&amp;sort=-at&amp;page=2"')


# --- CSV ----------------------------------------------------------------------------------------


def test_the_csv_holds_the_filtered_rows_with_a_header_and_is_recorded(
    client, admin_user, log, patient
):
    client.force_login(admin_user)

    r = client.get(URL, {"patient": patient.pk, "sort": "at", "format": "csv"})

    assert r["Content-Type"] == "text/csv; charset=utf-8"
    assert r["Content-Disposition"].startswith('attachment; filename="access-log-')
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0][:7] == [
        "event",
        "at_utc",
        "user_id",
        "username",
        "patient_id",
        "listed_patient_ids",
        "action",
    ]
    assert [row[0] for row in rows[1:]] == [str(log[1].pk), str(log[2].pk)]
    assert rows[1][1] == "2020-03-02T09:00:00.000000+00:00"
    assert rows[1][-1] == log[1].hash
    export = AccessEvent.objects.get(action="export")
    assert (export.user, export.patient) == (admin_user, patient)
    assert export.target == f"access log CSV patient={patient.pk}&sort=at"


def test_the_csv_never_hands_a_spreadsheet_a_formula(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL, {"action": "login_failed", "format": "csv"})

    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[1][3] == "'=HYPERLINK(1)"


def test_the_csv_is_staff_only(client, nurse):
    client.force_login(nurse)

    assert client.get(URL, {"format": "csv"}).status_code == 403
    assert not AccessEvent.objects.filter(action="export").exists()


def test_an_exported_day_matches_its_date_filter(client, admin_user, log):
    client.force_login(admin_user)

    r = client.get(URL, {"from": date(2020, 3, 3).isoformat(), "format": "csv"})

    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    exported = {int(row[0]) for row in rows[1:]}
    assert log[3].pk in exported and log[2].pk not in exported


def test_times_are_shown_in_utc_whatever_the_clinics_time_zone(client, admin_user, log, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    client.force_login(admin_user)

    r = client.get(URL, {"action": "view"})

    assertContains(r, ">2020-03-02 09:00:00</time>")
