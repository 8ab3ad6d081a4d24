"""Hostile input to every API write: never a 500, never half a save, never live markup.

Each example mixes a valid body with hostile values (random unicode, markup,
SQL-looking text, 10,000 characters, NUL bytes, lone surrogates, huge and
negative numbers, floats, NaN, booleans, null, lists, nested objects, wrong
dates) and checks what a clinician relies on: a refused body changes nothing
(rows, field values, history), an accepted one is saved exactly as sent, and
what comes back is JSON, which no browser renders as a page. Every example
runs in a transaction that is rolled back, so examples cannot see each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from tests.paths import DATA

pytestmark = pytest.mark.django_db

FUZZ = fuzz_settings(max_examples=30)

# --- hostile values ---------------------------------------------------------------------

HOSTILE_STRINGS = (
    *SHARED_HOSTILE_STRINGS,
    "2026-01-01T08:00:00",  # no offset: refused, never guessed
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "true",
    "null",
)
SCALARS = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(),
    LIMITS,
    st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 2**31, -1, 0, 1.5, -0.0]),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.dates().map(date.isoformat),
    st.datetimes().map(lambda d: d.isoformat() + "+05:30"),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
    st.just({"nested": {"deeper": [1, {"x": None}]}}),
)
# Keys a client might add: read-only fields, ids of other rows, nonsense.
EXTRA_KEYS = ("id", "patient", "entered_by", "entered_in_error", "version", "cycle", "__proto__")


def bodies(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` with some fields replaced by hostile values, some dropped, some added."""
    fields = sorted(valid)
    return st.builds(
        _mixed,
        st.just(valid),
        st.dictionaries(st.sampled_from([*fields, *EXTRA_KEYS]), VALUES, max_size=4),
        st.sets(st.sampled_from(fields), max_size=2),
    )


def _mixed(valid: dict[str, Any], hostile: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    body = {k: v for k, v in valid.items() if k not in dropped}
    return {**body, **hostile}


# --- the endpoints --------------------------------------------------------------------


@dataclass
class World:
    patient: Patient
    line: TherapyLine
    cycle: TreatmentCycle
    draw: CTCDraw
    oncologist: Any
    flagged: CTCDraw  # a result that needs review (3 then 12 CTC/7.5 mL: a conversion)


@dataclass(frozen=True)
class Target:
    """One write endpoint: where it is, a valid body, and which free text it saves where."""

    name: str
    method: str
    path: Callable[[World], str]
    valid: Callable[[World], dict[str, Any]]
    # body key -> the field of the written row that must hold that text, exactly
    texts: dict[str, str]
    # the row an accepted request wrote
    written: Callable[[World, dict[str, Any]], models.Model]


def _created(model: type[models.Model]) -> Callable[[World, dict[str, Any]], models.Model]:
    return lambda world, answer: model.objects.get(pk=answer["id"])


TARGETS = [
    Target(
        "POST patients",
        "POST",
        lambda w: "/api/v1/patients/",
        lambda w: {
            "mrn": "FZ-1",
            "given_name": "Ann",
            "family_name": "Lee",
            "birth_date": "1958-03-02",
            "sex": "female",
            "cancer_type": "breast",
            "diagnosed_on": "2024-01-01",
            "oncologist": w.oncologist.pk,
            "active": True,
        },
        {"mrn": "mrn", "given_name": "given_name", "family_name": "family_name"},
        _created(Patient),
    ),
    Target(
        "PATCH patient",
        "PATCH",
        lambda w: f"/api/v1/patients/{w.patient.pk}/",
        lambda w: {"given_name": "Joan", "version": 1, "reason": "Spelling"},
        {"mrn": "mrn", "given_name": "given_name", "family_name": "family_name"},
        lambda w, answer: Patient.objects.get(pk=w.patient.pk),
    ),
    Target(
        "POST therapy-lines",
        "POST",
        lambda w: f"/api/v1/patients/{w.patient.pk}/therapy-lines/",
        lambda w: {
            "regimen": "Capecitabine",
            "start_date": "2026-03-02",
            "end_date": None,
            "cycle_length_days": 21,
            "contains_doxorubicin": False,
            "line_number": 2,
        },
        {"regimen": "regimen"},
        _created(TherapyLine),
    ),
    Target(
        "POST cycles",
        "POST",
        lambda w: f"/api/v1/therapy-lines/{w.line.pk}/cycles/",
        lambda w: {
            "number": 2,
            "scheduled_date": "2026-01-26",
            "status": "delayed",
            "status_reason": "Neutropenia",
            "given_date": None,
        },
        {"status_reason": "status_reason"},
        _created(TreatmentCycle),
    ),
    Target(
        "PATCH cycle",
        "PATCH",
        lambda w: f"/api/v1/cycles/{w.cycle.pk}/",
        lambda w: {
            "status": "delayed",
            "status_reason": "Platelets 62",
            "scheduled_date": "2026-01-12",
            "version": 1,
            "reason": "Delayed",
        },
        {"status_reason": "status_reason"},
        lambda w, answer: TreatmentCycle.objects.get(pk=w.cycle.pk),
    ),
    Target(
        "POST draws",
        "POST",
        lambda w: f"/api/v1/patients/{w.patient.pk}/draws/",
        lambda w: {
            "drawn_at": "2026-02-01T08:30:00+01:00",
            "status": "resulted",
            "ctc_count": 7,
            "blood_volume_ml": 7.5,
            "accession": "CS-26-9",
            "comment": "Fine",
        },
        {"accession": "accession", "comment": "comment"},
        _created(CTCDraw),
    ),
    Target(
        "PATCH draw",
        "PATCH",
        lambda w: f"/api/v1/draws/{w.draw.pk}/",
        lambda w: {"ctc_count": 4, "comment": "Recounted", "version": 1, "reason": "Lab fix"},
        {"accession": "accession", "comment": "comment"},
        lambda w, answer: CTCDraw.objects.get(pk=w.draw.pk),
    ),
    Target(
        "POST draw entered-in-error",
        "POST",
        lambda w: f"/api/v1/draws/{w.draw.pk}/entered-in-error/",
        lambda w: {"reason": "Wrong patient", "version": 1},
        {"reason": "error_reason"},
        lambda w, answer: CTCDraw.objects.get(pk=w.draw.pk),
    ),
    Target(
        "POST imaging",
        "POST",
        lambda w: f"/api/v1/patients/{w.patient.pk}/imaging/",
        lambda w: {"performed_on": "2026-01-20", "modality": "ct", "response": "SD", "note": "Ok"},
        {"note": "note"},
        _created(ImagingAssessment),
    ),
    Target(
        "POST acknowledgements",
        "POST",
        lambda w: f"/api/v1/cycles/{w.cycle.pk}/acknowledgements/",
        lambda w: {"note": "Called the patient"},
        {"note": "note"},
        _created(Acknowledgement),
    ),
    Target(
        "POST result acknowledgements",
        "POST",
        lambda w: f"/api/v1/draws/{w.flagged.pk}/acknowledgements/",
        lambda w: {"note": "Called the patient"},
        {"note": "note"},
        _created(Acknowledgement),
    ),
]
# PATCH bodies echo a reason into the change history; it must arrive whole there too.
REASON_IN_HISTORY = {"PATCH patient", "PATCH cycle", "PATCH draw"}


BY_NAME = {target.name: target for target in TARGETS}


# --- checks ---------------------------------------------------------------------------


def as_saved_text(sent: Any) -> str | None:
    """What a text field holds after accepting `sent`; None when it is not text.

    Numbers are text once written down ("123"); surrounding whitespace is
    trimmed (DRF's documented default for every text field), nothing else.
    """
    if isinstance(sent, bool) or not isinstance(sent, str | int | float):
        return None
    return str(sent).strip()


def check_accepted(target: Target, world: World, body: dict[str, Any], answer: Any) -> None:
    row = target.written(world, answer)
    for key, field in target.texts.items():
        expected = as_saved_text(body.get(key))
        if expected is not None:
            assert getattr(row, field) == expected, f"{field} was not saved as sent"
    reason = as_saved_text(body.get("reason"))
    if target.name in REASON_IN_HISTORY and reason:
        assert row.history.latest().history_change_reason == reason


def send(api, target: Target, world: World, body: Any):
    # json.dumps escapes lone surrogates and writes NaN as a bare token: both hostile.
    return api.generic(
        target.method, target.path(world), json.dumps(body), content_type="application/json"
    )


@pytest.fixture
def world(patient, line, cycle, draw, oncologist, api) -> World:
    api.force_authenticate(oncologist)
    flagged = builders.draw(patient, oncologist, drawn_at=date(2026, 1, 9), ctc_count=12)
    return World(
        patient=patient, line=line, cycle=cycle, draw=draw, oncologist=oncologist, flagged=flagged
    )


# --- the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@FUZZ
@given(data=st.data())
def test_hostile_bodies_never_crash_never_half_save_and_come_back_as_json(target, world, api, data):
    body = data.draw(bodies(target.valid(world)), label="body")

    with rolled_back():
        before = snapshot()
        response = send(api, target, world, body)
        event(f"answered {response.status_code}")  # see --hypothesis-show-statistics

        assert response.status_code < 500
        assert response["Content-Type"] == "application/json"
        if response.status_code >= 400:
            assert snapshot() == before, "a refused request changed the record"
        else:
            check_accepted(target, world, body, response.json())


@pytest.mark.parametrize(
    "raw",
    ['[{"mrn": "X"}]', "null", '"text"', "1e999", "NaN", "{", '{"a": 1,}', "\xff\xfe"],
    ids=["list", "null", "string", "huge number", "NaN", "cut off", "trailing comma", "bytes"],
)
def test_a_body_that_is_not_a_json_object_is_a_400_and_saves_nothing(world, api, raw):
    before = snapshot()

    answers = {
        target.name: api.generic(
            target.method,
            target.path(world),
            raw.encode("latin-1"),
            content_type="application/json",
        ).status_code
        for target in TARGETS
    }

    assert answers == {target.name: 400 for target in TARGETS}
    assert snapshot() == before


def test_hostile_text_accepted_through_the_api_shows_escaped_on_every_page(
    world, api, client, nurse
):
    script, img = MARKUP
    patient = api.post(
        "/api/v1/patients/",
        {**BY_NAME["POST patients"].valid(world), "given_name": script, "family_name": img},
        format="json",
    ).json()["id"]
    api.post(
        f"/api/v1/patients/{patient}/therapy-lines/",
        {"regimen": script, "start_date": "2026-01-05", "cycle_length_days": 21},
        format="json",
    )
    cycle = api.post(
        f"/api/v1/therapy-lines/{TherapyLine.objects.get(patient=patient).pk}/cycles/",
        {"number": 1, "scheduled_date": "2026-01-26", "status": "delayed", "status_reason": img},
        format="json",
    ).json()["id"]
    drawn = datetime(2026, 1, 20, 8, 0, tzinfo=UTC).isoformat()
    api.post(
        f"/api/v1/patients/{patient}/draws/",
        {"drawn_at": drawn, "ctc_count": 9, "accession": "A<b>1", "comment": script},
        format="json",
    )
    api.post(
        f"/api/v1/patients/{patient}/imaging/",
        {"performed_on": "2026-01-21", "modality": "ct", "response": "PD", "note": script},
        format="json",
    )
    api.post(f"/api/v1/cycles/{cycle}/acknowledgements/", {"note": img}, format="json")
    client.force_login(nurse)

    pages = {
        url: client.get(url)
        for url in [
            f"/patients/{patient}/",
            "/patients/",
            "/?start=2026-01-20&days=14",
            f"/patients/{patient}/chart.svg",
            f"/patients/{patient}/chart.png",
            f"/patients/{patient}/report.pdf",
            "/results/",  # 9 CTC/7.5 mL at baseline: a result to review
        ]
    }

    pages["the patient list, searched"] = client.post("/patients/", {"q": script}, follow=True)

    for url, page in pages.items():
        assert page.status_code == 200, url
        body = page.content.decode("utf-8", "replace")
        for markup in MARKUP:
            assert markup not in body, f"{url} shows {markup!r} unescaped"
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/patients/{patient}/"].content.decode()
    )


@FUZZ
@given(query=st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text()))
def test_hostile_search_and_worklist_queries_never_crash(world, api, query):
    urls = [
        ("/api/v1/patients/", {"search": query}),
        ("/api/v1/worklist/", {"from": query, "days": query}),
    ]

    for url, params in urls:
        # surrogatepass: a lone surrogate goes out as the bytes a broken client would send.
        encoded = urlencode(params, encoding="utf-8", errors="surrogatepass")
        response = api.get(f"{url}?{encoded}")

        assert response.status_code in (200, 400), (url, params)


def test_a_new_draw_cannot_borrow_another_patients_id_or_an_author(world, api, nurse):
    other = builders.patient(world.oncologist)
    body = {
        "drawn_at": "2026-02-01T08:30:00+01:00",
        "ctc_count": 2,
        "patient": other.pk,
        "entered_by": nurse.username,
        "entered_in_error": True,
        "id": world.draw.pk,
    }

    response = api.post(f"/api/v1/patients/{world.patient.pk}/draws/", body, format="json")

    draw = CTCDraw.objects.get(pk=response.json()["id"])
    assert draw.pk != world.draw.pk
    assert (draw.patient, draw.entered_by, draw.entered_in_error) == (
        world.patient,
        world.oncologist,
        False,
    )
    assert not other.draws.exists()


HL7_MESSAGE = (DATA / "hl7" / "oru_r01_final.hl7").read_text()
HL7_SEGMENTS = HL7_MESSAGE.split("\r")
# (segment, field, value): a field of the lab's message replaced by a hostile value
HL7_EDITS = st.lists(
    st.tuples(
        st.integers(0, len(HL7_SEGMENTS) - 1),
        st.integers(1, 25),
        st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(), LIMITS),
    ),
    min_size=1,
    max_size=3,
)


def edited_hl7(edits: list[tuple[int, int, str]]) -> bytes:
    segments = [segment.split("|") for segment in HL7_SEGMENTS]
    for index, field, value in edits:
        fields = segments[index]
        fields.extend([""] * (field + 1 - len(fields)))
        fields[field] = value
    text = "\r".join("|".join(fields) for fields in segments)
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(body=st.one_of(HL7_EDITS.map(edited_hl7), st.binary(max_size=2000)))
def test_hostile_hl7_messages_never_crash_and_a_refused_one_saves_nothing(world, api, body):
    with rolled_back():
        before = snapshot()
        response = api.generic("POST", "/api/v1/hl7/oru/", body, content_type="text/plain")
        event(f"answered {response.status_code}")

        assert response.status_code in (200, 400)
        assert not response["Content-Type"].startswith("text/html")
        if response.status_code == 400:
            assert snapshot() == before


# --- what the fuzzing found, kept as plain examples -------------------------------------


def test_an_edit_reason_longer_than_the_history_keeps_is_refused_by_name(world, api):
    body = {"given_name": "Joan", "version": 1, "reason": "r" * 101}

    response = api.patch(f"/api/v1/patients/{world.patient.pk}/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["reason"]
    world.patient.refresh_from_db()
    assert (world.patient.given_name, world.patient.version) == ("Jane", 1)


def test_a_long_entered_in_error_reason_is_kept_whole_on_the_draw(world, api):
    reason = "Wrong patient's tube; " * 40

    response = api.post(
        f"/api/v1/draws/{world.draw.pk}/entered-in-error/",
        {"reason": reason, "version": 1},
        format="json",
    )

    assert response.status_code == 200
    world.draw.refresh_from_db()
    assert world.draw.error_reason == reason.strip()
    newest = world.draw.history.latest()
    assert newest.error_reason == reason.strip()
    assert newest.history_change_reason.startswith("Entered in error: Wrong patient's tube;")


def test_a_choice_that_is_not_valid_unicode_is_refused_by_name(world, api):
    body = '{"number": 2, "scheduled_date": "2026-01-26", "status": "\\ud800"}'

    response = api.generic(
        "POST", f"/api/v1/therapy-lines/{world.line.pk}/cycles/", body, "application/json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["status"]
    assert TreatmentCycle.objects.count() == 1
