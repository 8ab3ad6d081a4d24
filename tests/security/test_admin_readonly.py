"""Django admin shows the clinical record and its whole history, and changes none of it.

Every page admin has for a model of the `patients` app (walked from the admin
site, so a model registered tomorrow is covered), for every row and every saved
version of it, is asked by a superuser with GET and with every method that could
write, with the body a browser would send there: the row's values as they first
were (a revert, as simple-history's version page offered), a note added to every
text, and the name of every button. Afterwards every row, with every value
(`version` and `data_version` included), every change-history row and admin's
own change log must be exactly as before: writes are refused with 403, and a
page that answers has no field to edit and no button to save. The same holds
with simple-history's settings for editing and reverting switched on. (HEAD and
OPTIONS, and every other actor, are in tests/security/test_access_matrix.py.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import models
from django.test import Client, RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from pytest_django.asserts import assertContains, assertNotContains
from simple_history import admin as simple_history_admin

from patients import audit, services
from patients.models import AccessAction, AccessEvent, AccessEventPatient
from tests import builders
from tests.admin_urls import AdminRoute, admin_routes, submitted_values

pytestmark = pytest.mark.django_db

READS = ("GET",)
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Every button and confirmation admin and simple-history read: each page takes its own.
BUTTONS = {
    "_save": ["Save"],
    "_continue": ["Save and continue editing"],
    "_change_history": ["Revert"],
    "post": ["yes"],
    "action": ["delete_selected"],
    "index": ["0"],
    "select_across": ["0"],
}
# The access log gains the reads and refusals themselves, and nothing else.
LOGGED_BY_ADMIN = {AccessAction.VIEW, AccessAction.PERMISSION_DENIED}

# Credentials kept in the `patients` app are not the clinical record: staff revoke API
# tokens there (tests/security/test_api_tokens.py); enrolment codes are read-only
# (tests/security/test_mfa_enrolment.py, and the access matrix's walk of admin).
CREDENTIALS = frozenset({"apitoken", "mfaenrolment"})
# Care teams are staff's to manage (a patient's teams change through the services, into the
# patient's history: tests/records/test_care_teams.py).
STAFF_MANAGED = frozenset({"careteam"})
CLINICAL_ROUTES = [
    route
    for route in admin_routes()
    if route.model is not None
    and route.model._meta.app_label == "patients"
    and route.model._meta.model_name not in CREDENTIALS | STAFF_MANAGED
]
# The pages simple-history's settings reach: the history, a version, and the change page.
SETTINGS_ROUTES = [
    route
    for route in CLINICAL_ROUTES
    if hasattr(route.model, "history") and ("history" in route.route or "change" in route.route)
]


@pytest.fixture
def record(oncologist, patient, line, cycle, draw) -> list[models.Model]:
    """One of everything, each changed through the services so its history has two versions.

    A second draw is entered in error: reverting it would take it back to valid.
    """
    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"given_name": "Janet"},
    )
    services.update_therapy_line(line=line, by=oncologist, changes={"regimen": "Docetaxel"})
    services.update_cycle(
        cycle=cycle,
        version=builders.version_of(cycle),
        by=oncologist,
        changes={"scheduled_date": date(2026, 1, 6)},
    )
    services.update_draw(
        draw=draw,
        version=builders.version_of(draw),
        by=oncologist,
        changes={"ctc_count": 5},
        reason="Recounted",
    )
    wrong = services.record_draw(
        patient=patient,
        by=oncologist,
        drawn_at=datetime(2026, 1, 3, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="ACC-2",
    )
    wrong = services.mark_draw_entered_in_error(
        draw=wrong, version=builders.version_of(wrong), by=oncologist, reason="Wrong patient"
    )
    imaging = services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 3), modality="ct", response="SD"
    )
    ack = services.acknowledge_cycle(cycle=cycle, by=oncologist, note="Seen")
    event = audit.record(None, AccessAction.VIEW, user=oncologist, patient=patient, target="x")
    return [patient, line, cycle, draw, wrong, imaging, ack, event]


@pytest.fixture
def simple_history_editing_on(settings, monkeypatch) -> None:
    """simple-history told to offer editing and reverting, and to use its own permissions."""
    monkeypatch.setattr(simple_history_admin, "SIMPLE_HISTORY_EDIT", True)  # read at import
    settings.SIMPLE_HISTORY_EDIT = True
    settings.SIMPLE_HISTORY_REVERT_DISABLED = False
    settings.SIMPLE_HISTORY_ENFORCE_HISTORY_MODEL_PERMISSIONS = True


def state(first_new_event: int) -> dict[str, Any]:
    """Every row of the app with every value, every change-history row, admin's change log.

    Access events are compared up to `first_new_event`: reading adds events.
    """
    rows: dict[str, Any] = {"admin log": list(LogEntry.objects.values())}
    for model in apps.get_app_config("patients").get_models():
        kept = model.objects.all()
        if model is AccessEvent:
            kept = kept.filter(pk__lt=first_new_event)
        elif model is AccessEventPatient:  # the patients a list's new event names
            kept = kept.filter(event__lt=first_new_event)
        rows[model.__name__] = list(kept.order_by("pk").values())
        if hasattr(model._meta, "simple_history_manager_attribute"):  # a tracked model
            rows[f"{model.__name__} history"] = list(model.history.order_by("pk").values())
    return rows


def versions_of(obj: models.Model) -> Any:
    """The change history of `obj`: on a historical row, `pk` is the version's own id."""
    return type(obj).history.filter(**{obj._meta.pk.attname: obj.pk})


def revert_body(obj: models.Model, superuser: Any) -> dict[str, list[str]]:
    """What a browser posts to put `obj` back as it first was, each text with a note added.

    The form is plain admin's for the model, as a superuser would get it with
    nothing read-only, so every field is in the body under its widgets' names.
    """
    first = versions_of(obj).earliest().instance if hasattr(obj, "history") else obj
    request = RequestFactory().get("/")
    request.user = superuser
    form_class = admin.ModelAdmin(type(obj), admin.site).get_form(request, first, change=True)
    data = submitted_values(form_class(instance=first))
    for name, field in form_class.base_fields.items():
        if isinstance(field.widget, forms.Textarea) and not isinstance(field, forms.JSONField):
            data[name] = [data.get(name, [""])[0] + " (edited in admin)"]
    return data | BUTTONS


def urls_of(route: AdminRoute, obj: models.Model) -> list[str]:
    """The route for `obj`, once for every version in its history where the route names one."""
    parameters = route.parameters()
    if "history_id" not in parameters:
        return [route.path({"object_id": obj.pk})]
    versions = versions_of(obj).values_list("history_id", flat=True)
    return [route.path({"object_id": obj.pk, "history_id": v}) for v in versions]


def send(client: Client, method: str, url: str, body: dict[str, list[str]]) -> Any:
    if method in READS:
        return client.generic(method, url)
    # The same body for every write method, encoded as a browser encodes a form.
    return client.generic(method, url, encode_multipart(BOUNDARY, body), MULTIPART_CONTENT)


def problem(method: str, response: Any, body: dict[str, list[str]]) -> str | None:
    """Why `response` gave some access to change the record, if it did."""
    status = response.status_code
    if method in WRITES:
        return None if status == 403 else f"{status}, not 403"
    if status in (302, 403):  # `<id>/` leads on to the change page; add and delete refuse
        return None
    if status != 200:
        return f"{status}, not 200, 302 or 403"
    page = response.content.decode()
    editable = [name for name in body if f'name="{name}"' in page]
    return f"a form to save: {editable}" if editable else None


def problems_on(
    route: AdminRoute, record: list[models.Model], client: Client, superuser: Any
) -> list[str]:
    """Every way the pages of `route` gave `superuser` access to change the record."""
    client.force_login(superuser)
    objects = [obj for obj in record if isinstance(obj, route.model)]
    assert objects, f"No {route.model.__name__} in the `record` fixture: add one."
    if not route.parameters():
        objects = objects[:1]
    first_new_event = AccessEvent.objects.order_by("pk").last().pk + 1
    before = state(first_new_event)
    problems = []

    for obj in objects:
        body = revert_body(obj, superuser)
        for url in urls_of(route, obj):
            for method in (*READS, *WRITES):
                response = send(client, method, url, body)
                if found := problem(method, response, body):
                    problems.append(f"{method} {url}: {found}")
                if state(first_new_event) != before:
                    problems.append(f"{method} {url}: the record changed")
                    before = state(first_new_event)

    new_events = AccessEvent.objects.filter(pk__gte=first_new_event)
    unexpected = set(new_events.values_list("action", flat=True)) - LOGGED_BY_ADMIN
    if unexpected:
        problems.append(f"access events other than reads and refusals: {unexpected}")
    return problems


@pytest.mark.parametrize("route", CLINICAL_ROUTES, ids=str)
def test_no_admin_page_changes_the_clinical_record(route, record, client, admin_user):
    problems = problems_on(route, record, client, admin_user)

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("route", SETTINGS_ROUTES, ids=str)
def test_nor_does_it_with_simple_historys_editing_switched_on(
    route, record, simple_history_editing_on, client, admin_user
):
    problems = problems_on(route, record, client, admin_user)

    assert not problems, "\n".join(problems)


def test_staff_read_a_draw_and_every_version_of_it_in_admin(record, client, admin_user):
    """The recount from 3 to 5 is there to read, version by version, with no way to revert."""
    draw = record[3]
    first, latest = versions_of(draw).order_by("history_id")
    pages = f"/admin/patients/ctcdraw/{draw.pk}/"
    client.force_login(admin_user)

    change = client.get(f"{pages}change/")
    history = client.get(f"{pages}history/")
    was = client.get(f"{pages}history/{first.history_id}/")
    now = client.get(f"{pages}history/{latest.history_id}/")

    assert [r.status_code for r in (change, history, was, now)] == [200, 200, 200, 200]
    assertContains(history, f'href="{pages}history/{first.history_id}/"')
    assertContains(history, "Recounted")
    assertContains(was, '<div class="readonly">3</div>', html=True)
    assertContains(now, '<div class="readonly">5</div>', html=True)
    for page in (change, was, now):
        assertNotContains(page, "Revert")
        assertNotContains(page, 'name="_save"')
