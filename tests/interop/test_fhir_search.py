"""FHIR R4 Observation search: the parameters US Core clients send.

Every Bundle is validated with `fhir.resources` (R4B) and parsed with
fhirclient's R4 models, which refuse any element R4 does not define.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhirclient.models.bundle import Bundle as ClientBundle

from patients import services
from patients.models import AccessEvent, DrawStatus
from tests import builders
from tests.builders import api_token

pytestmark = pytest.mark.django_db

BASE = "/fhir/r4"
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DAY = timedelta(days=1)
START = datetime(2026, 2, 2, 8, 30, tzinfo=UTC)


def _bundle(r) -> dict:
    assert r.status_code == 200, r.content
    assert r["Content-Type"] == "application/fhir+json"
    Bundle.model_validate(r.json())
    ClientBundle(r.json())  # strict: raises on anything R4 does not define
    return r.json()


def _search(api, query: str, **headers) -> dict:
    return _bundle(api.get(f"{BASE}/Observation?{query}", **headers))


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _outcome(r) -> dict:
    assert r["Content-Type"] == "application/fhir+json"
    OperationOutcome.model_validate(r.json())
    return r.json()["issue"][0]


@pytest.fixture
def three(patient, oncologist):
    """Resulted on 2 Feb, pending on 9 Feb, cancelled on 16 Feb (08:30 UTC)."""
    return [
        builders.draw(patient, oncologist, drawn_at=START, ctc_count=7),
        builders.draw(patient, oncologist, drawn_at=START + 7 * DAY, status=DrawStatus.PENDING),
        builders.draw(patient, oncologist, drawn_at=START + 14 * DAY, status=DrawStatus.CANCELLED),
    ]


def _pks(draws) -> list[str]:
    return [str(d.pk) for d in draws]


# --- patient and subject --------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "subject=Patient/{pk}",
        "subject:Patient={pk}",
        "subject={pk}",
        "patient=http://testserver/fhir/r4/Patient/{pk}",
        "patient=https://testserver/fhir/r4/Patient/{pk}",
        "patient=Patient/{pk}&subject=Patient/{pk}",
    ],
)
def test_the_patient_may_be_given_as_subject_or_as_our_own_absolute_url(
    api, nurse, oncologist, patient, three, query
):
    builders.draw(builders.patient(oncologist), oncologist, drawn_at=START)  # someone else's
    api.force_authenticate(nurse)

    assert _ids(_search(api, query.format(pk=patient.pk))) == _pks(three)


@pytest.mark.parametrize(
    "reference",
    [
        "http://other.example.org/fhir/r4/Patient/{pk}",
        "https://testserver.evil.example/fhir/r4/Patient/{pk}",
        "http://testserver/other/Patient/{pk}",
    ],
)
@pytest.mark.parametrize("name", ["patient", "subject"])
def test_another_servers_patient_is_refused_not_read_as_ours(
    api, nurse, patient, three, reference, name
):
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation?{name}={reference.format(pk=patient.pk)}")

    assert r.status_code == 400
    issue = _outcome(r)
    assert issue["code"] == "invalid"
    assert "another server" in issue["diagnostics"]


@pytest.mark.parametrize(
    "query",
    [
        "subject=Group/{pk}",
        "patient={pk},{other}",
        "patient={pk}&subject=Patient/{other}",
        "subject=",
    ],
)
def test_a_search_names_exactly_one_of_our_patients(api, nurse, oncologist, patient, query):
    other = builders.patient(oncologist)
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation?{query.format(pk=patient.pk, other=other.pk)}")

    assert r.status_code == 400
    assert _outcome(r)["code"] == "invalid"


# --- code, category, status -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "matches"),
    [
        (f"{LOINC}|67568-6", True),
        ("67568-6", True),
        (f"{LOINC}|", True),
        (f"{LOINC}|68123-9", False),
        (f"{LOINC}|68123-9,{LOINC}|67568-6", True),
        ("http://snomed.info/sct|67568-6", False),
        ("|67568-6", False),  # a code without a system: ours has one
    ],
)
def test_code_filters_by_system_and_code(api, nurse, patient, three, code, matches):
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}&code={code.replace('|', '%7C')}")

    assert _ids(bundle) == (_pks(three) if matches else [])
    assert bundle["total"] == (3 if matches else 0)


@pytest.mark.parametrize(
    ("category", "matches"),
    [
        ("laboratory", True),
        (f"{CATEGORY}%7Claboratory", True),
        ("vital-signs", False),
        (f"{CATEGORY}%7Cvital-signs,laboratory", True),
    ],
)
def test_category_filters(api, nurse, patient, three, category, matches):
    api.force_authenticate(nurse)

    assert _ids(_search(api, f"patient={patient.pk}&category={category}")) == (
        _pks(three) if matches else []
    )


@pytest.mark.parametrize(
    ("status", "which"),
    [
        ("final", [0]),
        ("registered", [1]),
        ("cancelled", [2]),
        ("final,registered", [0, 1]),
        ("entered-in-error", []),
    ],
)
def test_status_filters(api, nurse, patient, three, status, which):
    api.force_authenticate(nurse)

    assert _ids(_search(api, f"patient={patient.pk}&status={status}")) == [
        str(three[k].pk) for k in which
    ]


def test_status_finds_a_draw_entered_in_error(api, nurse, oncologist, patient, three):
    services.mark_draw_entered_in_error(
        draw=three[0], version=builders.version_of(three[0]), by=oncologist, reason="Duplicate"
    )
    api.force_authenticate(nurse)

    assert _ids(_search(api, f"patient={patient.pk}&status=entered-in-error")) == [str(three[0].pk)]


# --- date ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "which"),
    [
        ("2026-02-02", [0]),
        ("eq2026-02-09", [1]),
        ("ne2026-02-09", [0, 2]),
        ("ge2026-02-09", [1, 2]),
        ("gt2026-02-09", [2]),
        ("le2026-02-09", [0, 1]),
        ("lt2026-02-09", [0]),
        ("2026-02", [0, 1, 2]),
        ("2026", [0, 1, 2]),
        ("2025", []),
        ("ge2026-02-09T08:30:00Z", [1, 2]),
        ("gt2026-02-09T08:30:00Z", [2]),
        ("le2026-02-09T08:30:00Z", [0, 1]),
        ("lt2026-02-09T08:30:00Z", [0]),
        ("eq2026-02-09T08:30:00Z", [1]),
        ("eq2026-02-09T08:30Z", [1]),
        ("eq2026-02-09T09:30:00%2B01:00", [1]),
        ("eq2026-02-09T09:30:00+01:00", [1]),  # an unencoded + arrives as a space
        ("ge2026-02-09T08:30:00.001Z", [2]),
        ("lt2026-02-03,gt2026-02-15", [0, 2]),  # a comma means or
    ],
)
def test_date_filters_with_prefixes_at_day_or_instant_precision(
    api, nurse, patient, three, date, which
):
    api.force_authenticate(nurse)

    assert _ids(_search(api, f"patient={patient.pk}&date={date}")) == [
        str(three[k].pk) for k in which
    ]


def test_two_dates_make_a_range(api, nurse, patient, three):
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}&date=ge2026-02-03&date=lt2026-02-16")

    assert _ids(bundle) == [str(three[1].pk)]


def test_a_date_without_offset_is_in_the_clinics_time_zone(
    api, nurse, oncologist, patient, settings
):
    settings.TIME_ZONE = "Pacific/Auckland"  # UTC+13 in February
    late = builders.draw(patient, oncologist, drawn_at=datetime(2026, 2, 2, 12, tzinfo=UTC))
    api.force_authenticate(nurse)

    # 12:00 UTC on 2 February is 01:00 on 3 February in Auckland.
    assert _ids(_search(api, f"patient={patient.pk}&date=2026-02-03")) == [str(late.pk)]
    assert _ids(_search(api, f"patient={patient.pk}&date=2026-02-02")) == []
    assert _ids(_search(api, f"patient={patient.pk}&date=2026-02-03T01:00")) == [str(late.pk)]


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("sa2026-02-02", "prefix sa is not supported"),
        ("ap2026-02-02", "prefix ap is not supported"),
        ("02/02/2026", "is not a FHIR date"),
        ("2026-13-01", "date=2026-13-01"),
        ("2026-03-29T02:30", "does not exist or happens twice"),  # spring forward, Berlin
        ("2026-10-25T02:30", "does not exist or happens twice"),  # autumn back, Berlin
    ],
)
def test_an_unusable_date_is_a_400_naming_it(api, nurse, patient, settings, date, message):
    settings.TIME_ZONE = "Europe/Berlin"
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation?patient={patient.pk}&date={date}")

    assert r.status_code == 400
    assert message in _outcome(r)["diagnostics"]


# --- sort, count, summary -------------------------------------------------------------------


def test_sort_by_date_newest_first_pages_newest_first(api, nurse, patient, three):
    api.force_authenticate(nurse)

    first = _search(api, f"patient={patient.pk}&_sort=-date&_count=2")
    links = {link["relation"]: link["url"] for link in first["link"]}
    second = _search(api, links["next"].split("?", 1)[1])

    assert _ids(first) + _ids(second) == _pks(reversed(three))
    assert ("_sort", "-date") in parse_qsl(urlsplit(links["next"]).query)


def test_sort_by_date_is_oldest_first(api, nurse, patient, three):
    api.force_authenticate(nurse)

    assert _ids(_search(api, f"patient={patient.pk}&_sort=date")) == _pks(three)


def test_summary_count_gives_the_total_of_the_filtered_draws_only(api, nurse, patient, three):
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}&status=final,cancelled&_summary=count")

    assert bundle["total"] == 2
    assert "entry" not in bundle
    assert [link["relation"] for link in bundle["link"]] == ["self"]


def test_the_links_carry_the_filters_so_every_page_is_filtered(api, nurse, oncologist, patient):
    draws = builders.draws(patient, oncologist, range(6), first=START, every_days=1)
    api.force_authenticate(nurse)

    pages = [_search(api, f"patient={patient.pk}&date=ge2026-02-03&_count=2")]
    while nxt := {link["relation"]: link["url"] for link in pages[-1]["link"]}.get("next"):
        pages.append(_search(api, nxt.split("?", 1)[1]))

    assert [i for page in pages for i in _ids(page)] == _pks(draws[1:])
    assert {page["total"] for page in pages} == {5}


# --- unsupported parameters -------------------------------------------------------------------


def test_an_unsupported_parameter_is_ignored_and_said_so_in_an_outcome_entry(
    api, nurse, patient, three
):
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}&value-quantity=gt5&_sort=value&_format=json")

    outcome = bundle["entry"][0]
    assert outcome["search"] == {"mode": "outcome"}
    OperationOutcome.model_validate(outcome["resource"])
    assert [(i["severity"], i["code"]) for i in outcome["resource"]["issue"]] == [
        ("warning", "not-supported"),
        ("warning", "not-supported"),
    ]
    assert "value-quantity" in outcome["resource"]["issue"][0]["diagnostics"]
    assert "_sort=value" in outcome["resource"]["issue"][1]["diagnostics"]
    assert _ids(bundle) == _pks(three)
    self_link = bundle["link"][0]["url"]
    assert "value-quantity" not in self_link and "_sort" not in self_link


@pytest.mark.parametrize("prefer", ["handling=strict", "return=representation, handling=strict"])
def test_an_unsupported_parameter_is_a_400_under_strict_handling(api, nurse, patient, prefer):
    api.force_authenticate(nurse)

    r = api.get(
        f"{BASE}/Observation?patient={patient.pk}&value-quantity=gt5&code:text=ctc",
        HTTP_PREFER=prefer,
    )

    assert r.status_code == 400
    issue = _outcome(r)
    assert issue["code"] == "not-supported"
    assert "value-quantity, code:text" in issue["diagnostics"]


def test_strict_handling_answers_a_supported_search_as_usual(api, nurse, patient, three):
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}&_format=json", HTTP_PREFER="handling=strict")

    assert _ids(bundle) == _pks(three)
    assert all(e["search"]["mode"] == "match" for e in bundle["entry"])


# --- POST _search ---------------------------------------------------------------------------


def test_a_form_encoded_post_to_search_works_like_get(api, nurse, patient, three):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token(nurse)}")

    r = api.post(
        f"{BASE}/Observation/_search",
        f"patient=Patient/{patient.pk}&status=registered,cancelled&_sort=-date",
        content_type="application/x-www-form-urlencoded",
    )

    assert _ids(_bundle(r)) == [str(three[2].pk), str(three[1].pk)]


def test_a_post_search_takes_the_url_parameters_too(api, nurse, patient, three):
    api.force_authenticate(nurse)

    r = api.post(
        f"{BASE}/Observation/_search?patient={patient.pk}",
        "status=final",
        content_type="application/x-www-form-urlencoded",
    )

    assert _ids(_bundle(r)) == [str(three[0].pk)]


def test_a_post_search_in_json_is_refused(api, nurse, patient):
    api.force_authenticate(nurse)

    r = api.post(f"{BASE}/Observation/_search", {"patient": patient.pk}, format="json")

    assert r.status_code == 415
    assert _outcome(r)["code"] == "not-supported"


def test_a_post_search_is_recorded_in_the_access_log_like_a_get(api, nurse, patient, three):
    api.force_authenticate(nurse)

    api.post(
        f"{BASE}/Observation/_search",
        f"patient={patient.pk}",
        content_type="application/x-www-form-urlencoded",
    )

    event = AccessEvent.objects.get()
    assert (event.action, event.patient_id) == ("api_read", patient.pk)


# --- access and cost --------------------------------------------------------------------------


def test_a_filtered_search_costs_the_same_queries_for_any_number_of_draws(
    api, nurse, oncologist, patient, count_queries
):
    api.force_authenticate(nurse)
    url = (
        f"{BASE}/Observation?patient={patient.pk}&code=67568-6&category=laboratory"
        "&status=final&date=ge2026-01-01&_sort=-date&_count=5"
    )
    builders.draw(patient, oncologist, drawn_at=START)
    api.get(url)  # the user's permissions are cached after the first request
    few = count_queries(lambda: api.get(url))

    builders.draws(patient, oncologist, range(1, 15), first=START + DAY, every_days=1)
    many = count_queries(lambda: api.get(url))

    assert few == many


def test_a_user_without_a_role_cannot_search_by_post(api, outsider, patient):
    api.force_authenticate(outsider)

    r = api.post(
        f"{BASE}/Observation/_search",
        f"patient={patient.pk}",
        content_type="application/x-www-form-urlencoded",
    )

    assert r.status_code == 403
    assert _outcome(r)["code"] == "forbidden"
