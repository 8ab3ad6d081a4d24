"""Hostile input to every form page: never a 500, never half a save, never live markup.

Each example posts a valid form with some fields replaced by hostile text
(random unicode, markup, SQL-looking text, 10,000 characters, NUL bytes,
undecodable bytes, huge, negative and fractional numbers, NaN, wrong dates,
repeated keys) as an oncologist, and checks what a clinician relies on: a
refused form changes nothing (rows, field values, history) and shows the form
again with 400; an accepted one is saved exactly as typed; no page, the form
shown again or the one the redirect leads to, ever contains the markup
unescaped. Every example runs in a transaction that is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import models
from hypothesis import event, given
from hypothesis import strategies as st

from patients.models import (
    Acknowledgement,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from tests import builders
from tests.fuzzing import HOSTILE_STRINGS as SHARED_HOSTILE_STRINGS
from tests.fuzzing import LIMITS, MARKUP, fuzz_settings, rolled_back, snapshot

pytestmark = pytest.mark.django_db

FUZZ = fuzz_settings(max_examples=25)

# --- hostile values ---------------------------------------------------------------------

HOSTILE_STRINGS = (
    *SHARED_HOSTILE_STRINGS,
    "2026-01-01T25:61",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "-7.5",
    "1.5",
    "0x1F",
    "٣",  # an Arabic-Indic digit three
    "-" + "9" * 30,
    "on",
)
TEXT = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(), LIMITS)
# A form field arrives as one string, or several when a key is repeated.
VALUES = st.one_of(TEXT, st.lists(TEXT, min_size=2, max_size=3))
EXTRA_KEYS = ("id", "patient", "entered_by", "entered_in_error", "version", "csrfmiddlewaretoken")


def bodies(valid: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` with some fields replaced by hostile values, some dropped, some added."""
    fields = sorted(valid)
    return st.builds(
        _mixed,
        st.just(valid),
        st.dictionaries(st.sampled_from([*fields, *EXTRA_KEYS]), VALUES, max_size=4),
        st.sets(st.sampled_from(fields), max_size=2),
    )


def _mixed(valid: dict[str, str], hostile: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    body = {k: v for k, v in valid.items() if k not in dropped}
    return {**body, **hostile}


def encoded(body: dict[str, Any]) -> str:
    # surrogatepass: a lone surrogate goes out as the bytes a broken client would send.
    return urlencode(body, doseq=True, encoding="utf-8", errors="surrogatepass")


def as_typed(sent: Any) -> str | None:
    """What a text field holds after accepting `sent`: the last value, as decoded, trimmed."""
    if sent is None:
        return None
    last = sent[-1] if isinstance(sent, list) else sent
    return last.encode("utf-8", "surrogatepass").decode("utf-8", "replace").strip()


# --- the forms --------------------------------------------------------------------------


@dataclass
class World:
    patient: Patient
    line: TherapyLine
    cycle: TreatmentCycle
    draw: CTCDraw
    oncologist: Any
    flagged: CTCDraw  # a result that needs review (3 then 12 CTC/7.5 mL: a conversion)


def _newest(model: type[models.Model]) -> Callable[[World], models.Model]:
    return lambda world: model.objects.order_by("-pk").first()


@dataclass(frozen=True)
class Target:
    """One form: where it posts, a valid body, and which typed text it saves where."""

    name: str
    path: Callable[[World], str]
    valid: Callable[[World], dict[str, str]]
    # form field -> the field of the written row that must hold the typed text, exactly
    texts: dict[str, str]
    written: Callable[[World], models.Model]


PATIENT = {"mrn": "mrn", "given_name": "given_name", "family_name": "family_name"}
DRAW = {"accession": "accession", "comment": "comment"}

TARGETS = [
    Target(
        "patient new",
        lambda w: "/patients/new/",
        lambda w: {
            "mrn": "FZ-1",
            "given_name": "Ann",
            "family_name": "Lee",
            "birth_date": "1958-03-02",
            "sex": "female",
            "cancer_type": "colorectal",
            "diagnosed_on": "",
            "oncologist": str(w.oncologist.pk),
            "active": "on",
        },
        PATIENT,
        _newest(Patient),
    ),
    Target(
        "patient edit",
        lambda w: f"/patients/{w.patient.pk}/edit/",
        lambda w: {
            "mrn": "MRN0001",
            "given_name": "Joan",
            "family_name": "Doe",
            "birth_date": "1960-05-17",
            "sex": "female",
            "cancer_type": "breast",
            "diagnosed_on": "",
            "oncologist": "",
            "active": "on",
            "version": "1",
            "reason": "Spelling",
        },
        PATIENT,
        lambda w: Patient.objects.get(pk=w.patient.pk),
    ),
    Target(
        "line new",
        lambda w: f"/patients/{w.patient.pk}/lines/new/",
        lambda w: {
            "line_number": "",
            "regimen": "Capecitabine",
            "start_date": "2026-03-02",
            "end_date": "",
            "cycle_length_days": "21",
        },
        {"regimen": "regimen"},
        _newest(TherapyLine),
    ),
    Target(
        "line edit",
        lambda w: f"/lines/{w.line.pk}/edit/",
        lambda w: {
            "line_number": "1",
            "regimen": "Paclitaxel weekly",
            "start_date": "2026-01-05",
            "end_date": "2026-06-01",
            "cycle_length_days": "21",
            "contains_doxorubicin": "on",
        },
        {"regimen": "regimen"},
        lambda w: TherapyLine.objects.get(pk=w.line.pk),
    ),
    Target(
        "cycle new",
        lambda w: f"/lines/{w.line.pk}/cycles/new/",
        lambda w: {
            "number": "2",
            "scheduled_date": "2026-01-26",
            "status": "planned",
            "given_date": "",
            "status_reason": "",
        },
        {"status_reason": "status_reason"},
        _newest(TreatmentCycle),
    ),
    Target(
        "cycle edit",
        lambda w: f"/cycles/{w.cycle.pk}/edit/",
        lambda w: {
            "number": "1",
            "scheduled_date": "2026-01-12",
            "status": "delayed",
            "given_date": "",
            "status_reason": "Platelets 62",
            "version": "1",
            "move_later_cycles": "on",
        },
        {"status_reason": "status_reason"},
        lambda w: TreatmentCycle.objects.get(pk=w.cycle.pk),
    ),
    Target(
        "draw new",
        lambda w: f"/patients/{w.patient.pk}/draws/new/",
        lambda w: {
            "drawn_at": "2026-02-01T08:30",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "7",
            "accession": "CS-9",
            "comment": "Fine",
        },
        DRAW,
        _newest(CTCDraw),
    ),
    Target(
        "draw edit",
        lambda w: f"/draws/{w.draw.pk}/edit/",
        lambda w: {
            "drawn_at": "2026-01-02T09:30",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "4",
            "accession": "ACC-1",
            "comment": "Recounted",
            "reason": "Lab fix",
            "version": "1",
        },
        DRAW,
        lambda w: CTCDraw.objects.get(pk=w.draw.pk),
    ),
    Target(
        "draw entered in error",
        lambda w: f"/draws/{w.draw.pk}/entered-in-error/",
        lambda w: {"error-reason": "Wrong patient", "error-version": "1"},
        {"error-reason": "error_reason"},
        lambda w: CTCDraw.objects.get(pk=w.draw.pk),
    ),
    Target(
        "imaging new",
        lambda w: f"/patients/{w.patient.pk}/imaging/new/",
        lambda w: {"performed_on": "2026-01-20", "modality": "ct", "response": "SD", "note": "Ok"},
        {"note": "note"},
        _newest(ImagingAssessment),
    ),
    Target(
        "cycle acknowledge",
        lambda w: f"/cycles/{w.cycle.pk}/acknowledge/",
        lambda w: {"note": "Called the patient", "next": f"/patients/{w.patient.pk}/"},
        {"note": "note"},
        _newest(Acknowledgement),
    ),
    Target(
        "result acknowledge",
        lambda w: f"/draws/{w.flagged.pk}/acknowledge/",
        lambda w: {"note": "Called the patient", "next": "/results/"},
        {"note": "note"},
        _newest(Acknowledgement),
    ),
]
# These forms carry an edit reason, which must arrive whole in the change history.
REASON_IN_HISTORY = {"patient edit", "draw edit"}
# The acknowledge buttons live on the worklist, the results to review and the patient
# page: they always go back there, with a message saying whether the note was saved.
ALWAYS_REDIRECTS = {"cycle acknowledge", "result acknowledge"}


BY_NAME = {target.name: target for target in TARGETS}


# --- checks ---------------------------------------------------------------------------


def assert_no_live_markup(response, where: str) -> None:
    body = response.content.decode("utf-8", "replace")
    for markup in MARKUP:
        assert markup not in body, f"{where} shows {markup!r} unescaped"


def check_saved_as_typed(target: Target, world: World, body: dict[str, Any]) -> None:
    row = target.written(world)
    for key, field in target.texts.items():
        expected = as_typed(body.get(key))
        if expected is not None:
            assert getattr(row, field) == expected, f"{field} was not saved as typed"
    reason = as_typed(body.get("reason"))
    if target.name in REASON_IN_HISTORY and reason:
        assert row.history.latest().history_change_reason == reason


@pytest.fixture
def world(patient, line, cycle, draw, oncologist, client) -> World:
    client.force_login(oncologist)
    flagged = builders.draw(patient, oncologist, drawn_at=date(2026, 1, 9), ctc_count=12)
    return World(
        patient=patient, line=line, cycle=cycle, draw=draw, oncologist=oncologist, flagged=flagged
    )


# --- the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@FUZZ
@given(data=st.data())
def test_hostile_forms_never_crash_never_half_save_and_never_echo_live_markup(
    target, world, client, data
):
    body = data.draw(bodies(target.valid(world)), label="body")

    with rolled_back():
        before = snapshot()
        response = client.post(
            target.path(world), encoded(body), content_type="application/x-www-form-urlencoded"
        )
        saved = snapshot() != before
        event(f"answered {response.status_code}")  # see --hypothesis-show-statistics

        assert response.status_code < 500
        assert_no_live_markup(response, "the form shown again")
        if response.status_code == 302:
            assert saved or target.name in ALWAYS_REDIRECTS, "a redirect, but nothing saved"
            if saved:
                check_saved_as_typed(target, world, body)
            landing = client.get(response["Location"])
            assert landing.status_code < 500
            assert_no_live_markup(landing, f"the page after saving ({response['Location']})")
        else:
            assert response.status_code == 400
            assert not saved, "a refused form changed the record"


@FUZZ
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "q": VALUES,
            "page": VALUES,
            "start": VALUES,
            "days": VALUES,
            "flagged": VALUES,
            "oncologist": VALUES,
        },
    )
)
def test_hostile_search_and_worklist_filters_never_crash_or_echo_live_markup(world, client, params):
    query = encoded(params)
    searched = client.post(
        "/patients/",
        encoded({"q": params.get("q", "")}),
        content_type="application/x-www-form-urlencoded",
    )
    assert searched.status_code == 302

    for url in ("/patients/", "/"):
        response = client.get(f"{url}?{query}")

        assert response.status_code == 200, url
        assert_no_live_markup(response, url)


def test_a_refused_form_keeps_what_was_typed_escaped(world, client):
    script = MARKUP[0]

    response = client.post(
        "/patients/new/",
        {**BY_NAME["patient new"].valid(world), "given_name": script, "birth_date": "x"},
    )

    assert response.status_code == 400
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in response.content.decode()
    assert not Patient.objects.exclude(pk=world.patient.pk).exists()


def test_a_nul_byte_is_refused_with_a_message_naming_the_field(world, client):
    response = client.post(
        f"/draws/{world.draw.pk}/edit/",
        {**BY_NAME["draw edit"].valid(world), "comment": "before\x00after"},
    )

    assert response.status_code == 400
    assert "comment" in response.context["form"].errors
    world.draw.refresh_from_db()
    assert (world.draw.version, world.draw.comment) == (1, "")


# --- what the fuzzing found, kept as plain examples -------------------------------------


def test_an_acknowledgement_with_a_next_that_is_no_url_still_goes_back(world, client):
    response = client.post(
        f"/draws/{world.flagged.pk}/acknowledge/",
        {"note": "Checked", "next": MARKUP[1]},
    )

    assert response.status_code == 302
    assert "<" not in response["Location"] and '"' not in response["Location"]
    assert Acknowledgement.objects.get().note == "Checked"


def test_a_search_for_a_nul_byte_finds_nothing_rather_than_failing(world, client):
    response = client.post("/patients/", {"q": "\x00"}, follow=True)

    assert response.status_code == 200


def test_a_long_entered_in_error_reason_is_kept_whole(world, client):
    reason = "Sample belonged to another patient. " * 25

    response = client.post(
        f"/draws/{world.draw.pk}/entered-in-error/", {"error-reason": reason, "error-version": "1"}
    )

    assert response.status_code == 302
    world.draw.refresh_from_db()
    assert world.draw.error_reason == reason.strip()
