"""FHIR R4 out: /fhir/r4/metadata, Patient/{id}, Observation/{id}, Observation?patient=.

Every resource the endpoints return is validated with the `fhir.resources`
R4B models, and checked for what clinical-rules.md section 5 asks of it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.http import http_date, parse_http_date
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

from ctctrack import errors
from patients import services
from patients.interop.fhir import resources as fhir_resources
from patients.models import AccessEvent, ApiToken, DrawStatus
from tests import builders
from tests.builders import api_token
from tests.paths import ROOT

pytestmark = pytest.mark.django_db

BASE = "/fhir/r4"
UCUM = "http://unitsofmeasure.org"
US_CORE_LAB = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
MCODE_TMT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-marker-test"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DAY = timedelta(days=1)
START = datetime(2026, 2, 2, 8, 30, tzinfo=UTC)


def _observation(api, draw) -> dict:
    r = api.get(f"{BASE}/Observation/{draw.pk}")
    assert r.status_code == 200, r.content
    Observation.model_validate(r.json())
    return r.json()


def _codes(resource: dict, key: str) -> list[str]:
    return [coding["code"] for concept in resource.get(key, []) for coding in concept["coding"]]


def _outcome(r) -> str:
    """The OperationOutcome's first issue code, after validating it."""
    assert r["Content-Type"] == "application/fhir+json"
    OperationOutcome.model_validate(r.json())
    return r.json()["issue"][0]["code"]


# --- metadata --------------------------------------------------------------------------


def test_metadata_is_a_capability_statement_for_fhir_4_0_1_readable_without_signing_in(api):
    r = api.get(f"{BASE}/metadata")

    assert r.status_code == 200
    assert r["Content-Type"] == "application/fhir+json"
    statement = CapabilityStatement.model_validate(r.json())
    assert (statement.fhirVersion, statement.format, statement.kind) == (
        "4.0.1",
        ["json"],
        "instance",
    )
    resources = {res["type"]: res for res in r.json()["rest"][0]["resource"]}
    assert [i["code"] for i in resources["Patient"]["interaction"]] == ["read"]
    assert [i["code"] for i in resources["Observation"]["interaction"]] == ["read", "search-type"]
    assert [p["name"] for p in resources["Observation"]["searchParam"]] == [
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "status",
        "_sort",
        "_count",
        "_summary",
    ]
    assert resources["Observation"]["supportedProfile"] == [US_CORE_LAB, MCODE_TMT]
    assert {res["conditionalRead"] for res in resources.values()} == {"full-support"}
    assert r.json()["implementation"]["url"] == "http://testserver/fhir/r4/"


# --- Patient ------------------------------------------------------------------------------


def test_a_patient_is_read_with_the_sites_mrn_system(api, nurse, patient, settings):
    settings.CTCTRACK_MRN_SYSTEM = "urn:oid:1.2.826.0.1.3680043.2.99"
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Patient/{patient.pk}")

    assert r.status_code == 200
    FhirPatient.model_validate(r.json())
    body = r.json()
    assert body["id"] == str(patient.pk)
    assert body["identifier"][0]["system"] == "urn:oid:1.2.826.0.1.3680043.2.99"
    assert body["identifier"][0]["value"] == "MRN0001"
    assert body["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert body["name"] == [{"use": "official", "family": "Doe", "given": ["Jane"]}]
    assert (body["gender"], body["birthDate"], body["active"]) == ("female", "1960-05-17", True)


def test_reading_a_patient_is_recorded_in_the_access_log(api, nurse, patient):
    api.force_authenticate(nurse)

    api.get(f"{BASE}/Patient/{patient.pk}")

    event = AccessEvent.objects.get()
    assert (event.user, event.action, event.patient_id) == (nurse, "api_read", patient.pk)
    assert event.target == f"FHIR Patient/{patient.pk}"


@pytest.mark.parametrize("resource_id", ["999999", "abc", "1.5"])
def test_an_unknown_patient_is_a_404_operation_outcome(api, nurse, resource_id):
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Patient/{resource_id}")

    assert r.status_code == 404
    assert _outcome(r) == "not-found"
    assert f"No Patient with id {resource_id}" in r.json()["issue"][0]["diagnostics"]


# --- Observation -------------------------------------------------------------------------


def test_a_draw_is_an_observation_as_the_clinical_rules_describe(api, nurse, oncologist, patient):
    draw = builders.draw(
        patient,
        oncologist,
        drawn_at=START,
        ctc_count=7,
        accession="CS-26-0101",
        comment="Clear sample",
    )
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["status"] == "final"
    assert body["category"][0]["coding"][0]["code"] == "laboratory"
    assert body["code"]["coding"] == [{"system": "http://loinc.org", "code": "67568-6"}]
    assert body["subject"] == {"reference": f"Patient/{patient.pk}"}
    assert body["effectiveDateTime"] == "2026-02-02T08:30:00+00:00"
    assert body["valueQuantity"] == {
        "value": 7,
        "unit": "cells/7.5 mL",
        "system": UCUM,
        "code": "{cells}/(7500.uL)",
    }
    assert body["meta"]["profile"] == [US_CORE_LAB, MCODE_TMT]
    assert body["identifier"][0]["value"] == "CS-26-0101"
    assert body["note"] == [{"text": "Clear sample"}]
    assert body["referenceRange"] == [{"text": "favourable below 5 CTC per 7.5 mL (breast)"}]
    assert body["interpretation"] == [
        {"coding": [{"system": INTERPRETATION, "code": "H"}], "text": "unfavourable"}
    ]


def test_the_draw_time_is_given_in_the_clinics_time_zone(api, nurse, oncologist, patient, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    draw = builders.draw(patient, oncologist, drawn_at=START)
    api.force_authenticate(nurse)

    assert _observation(api, draw)["effectiveDateTime"] == "2026-02-02T09:30:00+01:00"


@pytest.mark.parametrize(
    ("cancer_type", "loinc", "count", "code", "cutoff"),
    [
        ("breast", "67568-6", 4, "N", 5),
        ("breast", "67568-6", 5, "H", 5),
        ("prostate", "68123-9", 4, "N", 5),
        ("prostate", "68123-9", 5, "H", 5),
        ("colorectal", "67568-6", 2, "N", 3),
        ("colorectal", "67568-6", 3, "H", 3),
    ],
)
def test_interpretation_and_reference_range_follow_the_cut_off_of_each_cancer_type(
    api, nurse, oncologist, cancer_type, loinc, count, code, cutoff
):
    patient = builders.patient(oncologist, cancer_type=cancer_type)
    draw = builders.draw(patient, oncologist, drawn_at=START, ctc_count=count)
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["code"]["coding"][0]["code"] == loinc
    assert _codes(body, "interpretation") == [code]
    assert body["interpretation"][0]["text"] == ("unfavourable" if code == "H" else "favourable")
    # Text only: an inclusive `high` cannot say "below 5" for a rate such as 4.5.
    assert body["referenceRange"] == [
        {"text": f"favourable below {cutoff} CTC per 7.5 mL ({cancer_type})"}
    ]


def test_the_prostate_code_carries_the_display_the_specification_quotes(api, nurse, oncologist):
    draw = builders.draw(
        builders.patient(oncologist, cancer_type="prostate"), oncologist, drawn_at=START
    )
    api.force_authenticate(nurse)

    coding = _observation(api, draw)["code"]["coding"][0]

    assert coding["display"] == "Circulating tumor cells.prostate [#/volume] in Blood"


def test_a_rise_beyond_counting_noise_adds_u(api, nurse, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=START, ctc_count=0)
    rise = builders.draw(
        patient, oncologist, drawn_at=START + 21 * DAY, ctc_count=5
    )  # 0 -> 5: p = 0.031
    api.force_authenticate(nurse)

    body = _observation(api, rise)

    assert _codes(body, "interpretation") == ["H", "U"]
    assert body["interpretation"][1]["coding"][0]["display"] == "Significant change up"


def test_a_rise_within_counting_noise_has_no_u(api, nurse, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=START, ctc_count=2)
    rise = builders.draw(
        patient, oncologist, drawn_at=START + 21 * DAY, ctc_count=8
    )  # 2 -> 8: p = 0.055
    api.force_authenticate(nurse)

    assert _codes(_observation(api, rise), "interpretation") == ["H"]


def test_a_non_standard_volume_sends_the_rate_and_notes_the_raw_count(
    api, nurse, oncologist, patient
):
    draw = builders.draw(
        patient, oncologist, drawn_at=START, ctc_count=3, blood_volume_ml=Decimal("4.5")
    )
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["valueQuantity"] == {
        "value": 5,
        "unit": "cells/7.5 mL",
        "system": UCUM,
        "code": "{cells}/(7500.uL)",
    }
    assert _codes(body, "interpretation") == ["H"]  # exactly at the cut-off
    assert body["note"] == [
        {"text": "3 CTC counted in 4.5 mL; the rate per 7.5 mL is indicative only."}
    ]


def test_a_lower_bound_is_sent_with_the_comparator_more_than(api, nurse, oncologist, patient):
    draw = builders.draw(patient, oncologist, drawn_at=START, ctc_count=1000, count_qualifier=">")
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["valueQuantity"] == {
        "value": 1000,
        "comparator": ">",
        "unit": "cells/7.5 mL",
        "system": UCUM,
        "code": "{cells}/(7500.uL)",
    }
    assert body["referenceRange"] == [{"text": "favourable below 5 CTC per 7.5 mL (breast)"}]
    assert _codes(body, "interpretation") == ["H"]


def test_a_lower_bound_in_another_volume_is_the_rate_of_its_bound(api, nurse, oncologist, patient):
    draw = builders.draw(
        patient,
        oncologist,
        drawn_at=START,
        ctc_count=7,
        count_qualifier=">",
        blood_volume_ml=Decimal("10"),
    )
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["valueQuantity"] == {
        "value": 5.25,
        "comparator": ">",
        "unit": "cells/7.5 mL",
        "system": UCUM,
        "code": "{cells}/(7500.uL)",
    }
    assert body["note"] == [
        {"text": "more than 7 CTC counted in 10 mL; the rate per 7.5 mL is indicative only."}
    ]


def test_an_exact_count_has_no_comparator(api, nurse, oncologist, patient):
    draw = builders.draw(patient, oncologist, drawn_at=START, ctc_count=1000)
    api.force_authenticate(nurse)

    assert "comparator" not in _observation(api, draw)["valueQuantity"]


def test_a_rate_just_below_the_cut_off_is_never_sent_as_the_cut_off(
    api, nurse, oncologist, patient
):
    draw = builders.draw(
        patient, oncologist, drawn_at=START, ctc_count=6, blood_volume_ml=Decimal("9.01")
    )  # 4.994...

    api.force_authenticate(nurse)
    body = _observation(api, draw)

    assert body["valueQuantity"]["value"] == 4.99
    assert _codes(body, "interpretation") == ["N"]


@pytest.mark.parametrize(
    ("status", "reason", "text"),
    [
        (DrawStatus.REJECTED, "not-performed", "Specimen rejected"),
        (DrawStatus.FAILED, "error", "Not evaluable (analytic failure)"),
    ],
)
def test_a_draw_without_a_result_has_a_data_absent_reason_and_no_value(
    api, nurse, oncologist, patient, status, reason, text
):
    draw = builders.draw(patient, oncologist, drawn_at=START, status=status, comment="Haemolysed")
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["status"] == "final"
    assert "valueQuantity" not in body and "interpretation" not in body
    assert body["dataAbsentReason"]["coding"][0]["system"] == ABSENT
    assert body["dataAbsentReason"]["coding"][0]["code"] == reason
    assert body["dataAbsentReason"]["text"] == text
    assert body["note"] == [{"text": "Haemolysed"}]


@pytest.mark.parametrize(
    ("status", "fhir_status", "reason", "display", "text"),
    [
        (DrawStatus.PENDING, "registered", "temp-unknown", "Temporarily Unknown", "Result pending"),
        (DrawStatus.CANCELLED, "cancelled", "not-performed", "Not Performed", "Draw cancelled"),
    ],
)
def test_pending_and_cancelled_draws_say_why_they_have_no_value(
    api, nurse, oncologist, patient, status, fhir_status, reason, display, text
):
    """US Core's us-core-2: a value or a data-absent reason, on every Observation."""
    draw = builders.draw(patient, oncologist, drawn_at=START, status=status)
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["status"] == fhir_status
    assert not {"valueQuantity", "interpretation"} & body.keys()
    assert body["dataAbsentReason"]["coding"] == [
        {"system": ABSENT, "code": reason, "display": display}
    ]
    assert body["dataAbsentReason"]["text"] == text
    assert body["meta"]["profile"] == [US_CORE_LAB, MCODE_TMT]


def test_a_draw_entered_in_error_says_so_and_is_not_interpreted(api, nurse, oncologist, patient):
    draw = builders.draw(patient, oncologist, drawn_at=START, ctc_count=12)
    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong patient label"
    )
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["status"] == "entered-in-error"
    assert "interpretation" not in body
    assert body["note"][0] == {"text": "Entered in error: Wrong patient label"}


def _documented_category() -> dict:
    """The category docs/interoperability.md promises, from its Observation table."""
    docs = (ROOT / "docs" / "interoperability.md").read_text()
    (row,) = [line for line in docs.splitlines() if line.startswith("| `category` | exactly one")]
    return json.loads(re.search(r"`(\{.*?\})`", row).group(1))


@pytest.mark.parametrize(
    "kind", ["resulted", "pending", "cancelled", "failed", "entered in error", "no LOINC code"]
)
def test_every_observation_has_the_one_category_the_docs_say(
    api, nurse, oncologist, settings, kind
):
    settings.CTC_LOINC_CODES = {"breast": "67568-6", "prostate": "68123-9"}
    patient = builders.patient(
        oncologist, cancer_type="colorectal" if kind == "no LOINC code" else "breast"
    )
    status = kind if kind in ("pending", "cancelled", "failed") else DrawStatus.RESULTED
    draw = builders.draw(patient, oncologist, drawn_at=START, status=status)
    if kind == "entered in error":
        services.mark_draw_entered_in_error(
            draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong tube"
        )
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["category"] == [_documented_category()]
    assert _documented_category() == {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory",
                "display": "Laboratory",
            }
        ]
    }


def test_reading_an_observation_is_recorded_in_the_access_log(api, nurse, oncologist, patient):
    draw = builders.draw(patient, oncologist, drawn_at=START)
    api.force_authenticate(nurse)

    _observation(api, draw)

    event = AccessEvent.objects.get()
    assert (event.action, event.patient_id, event.target) == (
        "api_read",
        patient.pk,
        f"FHIR Observation/{draw.pk}",
    )


@pytest.mark.parametrize("resource_id", ["999999", "x1"])
def test_an_unknown_observation_is_a_404_operation_outcome(api, nurse, resource_id):
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation/{resource_id}")

    assert r.status_code == 404
    assert _outcome(r) == "not-found"


# --- search ------------------------------------------------------------------------------


def _search(api, query: str):
    r = api.get(f"{BASE}/Observation?{query}")
    assert r.status_code == 200, r.content
    Bundle.model_validate(r.json())
    return r.json()


def test_a_search_by_patient_is_a_searchset_bundle_oldest_first(api, nurse, oncologist, patient):
    late = builders.draw(patient, oncologist, drawn_at=START + 42 * DAY, ctc_count=1)
    early = builders.draw(patient, oncologist, drawn_at=START, ctc_count=2)
    builders.draw(builders.patient(oncologist), oncologist, drawn_at=START)  # someone else's
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}")

    assert (bundle["type"], bundle["total"]) == ("searchset", 2)
    assert [e["resource"]["id"] for e in bundle["entry"]] == [str(early.pk), str(late.pk)]
    assert bundle["entry"][0]["fullUrl"] == f"http://testserver/fhir/r4/Observation/{early.pk}"
    assert bundle["link"] == [
        {
            "relation": "self",
            "url": f"http://testserver/fhir/r4/Observation?patient={patient.pk}&_count=50&_offset=0",
        }
    ]
    for entry in bundle["entry"]:
        Observation.model_validate(entry["resource"])


def test_a_search_accepts_a_patient_reference(api, nurse, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=START)
    api.force_authenticate(nurse)

    assert _search(api, f"patient=Patient/{patient.pk}")["total"] == 1


def test_a_search_lists_draws_entered_in_error_with_that_status(api, nurse, oncologist, patient):
    wrong = builders.draw(patient, oncologist, drawn_at=START)
    services.mark_draw_entered_in_error(
        draw=wrong, version=builders.version_of(wrong), by=oncologist, reason="Duplicate"
    )
    builders.draw(patient, oncologist, drawn_at=START + DAY)
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}")

    assert [e["resource"]["status"] for e in bundle["entry"]] == ["entered-in-error", "final"]


def test_next_and_previous_links_walk_every_draw_oldest_first(api, nurse, oncologist, patient):
    draws = builders.draws(patient, oncologist, range(5), first=START, every_days=7)
    api.force_authenticate(nurse)

    pages = [_search(api, f"patient={patient.pk}&_count=2")]
    while next_url := {link["relation"]: link["url"] for link in pages[-1]["link"]}.get("next"):
        pages.append(_search(api, next_url.split("?", 1)[1]))

    seen = [e["resource"]["id"] for page in pages for e in page["entry"]]
    assert seen == [str(d.pk) for d in draws]
    assert [len(page["entry"]) for page in pages] == [2, 2, 1]
    assert {page["total"] for page in pages} == {5}
    previous = {link["relation"]: link["url"] for link in pages[-1]["link"]}["previous"]
    assert previous.endswith("_count=2&_offset=2")
    assert "previous" not in {link["relation"] for link in pages[0]["link"]}


def test_a_count_of_zero_gives_the_total_only(api, nurse, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=START)
    api.force_authenticate(nurse)

    bundle = _search(api, f"patient={patient.pk}&_count=0")

    assert bundle["total"] == 1
    assert "entry" not in bundle  # FHIR JSON has no empty arrays
    assert [link["relation"] for link in bundle["link"]] == ["self"]


def test_a_search_costs_the_same_queries_for_any_number_of_draws(
    api, nurse, oncologist, patient, count_queries
):
    api.force_authenticate(nurse)
    url = f"{BASE}/Observation?patient={patient.pk}"
    builders.draw(patient, oncologist, drawn_at=START)
    api.get(url)  # the user's permissions are cached after the first request
    few = count_queries(lambda: api.get(url))

    builders.draws(patient, oncologist, range(1, 15), first=START + DAY, every_days=1)
    many = count_queries(lambda: api.get(url))

    assert few == many


@pytest.mark.parametrize(
    "query",
    [
        "",
        "_count=5",
        "patient=",
        "patient=Encounter/1",
        "patient=1&_count=-1",
        "patient=1&_offset=x",
    ],
)
def test_a_search_without_a_usable_patient_or_page_is_a_400_operation_outcome(api, nurse, query):
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation?{query}")

    assert r.status_code == 400
    assert _outcome(r) == "invalid"


def test_a_search_for_an_unknown_patient_is_a_404_operation_outcome(api, nurse):
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation?patient=999999")

    assert r.status_code == 404
    assert _outcome(r) == "not-found"


# --- access and formats -------------------------------------------------------------------


READS = ["Patient/{patient}", "Observation?patient={patient}", "Observation/{draw}"]


@pytest.mark.parametrize("path", READS)
def test_anonymous_callers_are_asked_to_authenticate(api, patient, draw, path):
    r = api.get(f"{BASE}/{path.format(patient=patient.pk, draw=draw.pk)}")

    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Bearer"
    assert _outcome(r) == "login"


@pytest.mark.parametrize("path", READS[:2])
def test_users_without_a_role_are_forbidden(api, outsider, patient, path):
    api.force_authenticate(outsider)

    r = api.get(f"{BASE}/{path.format(patient=patient.pk)}")

    assert r.status_code == 403
    assert _outcome(r) == "forbidden"


@pytest.mark.parametrize("keyword", ["Token", "Bearer"])
def test_a_token_works_as_it_does_for_the_api(api, nurse, patient, keyword):
    api.credentials(HTTP_AUTHORIZATION=f"{keyword} {api_token(nurse)}")

    assert api.get(f"{BASE}/Patient/{patient.pk}").status_code == 200


@pytest.mark.parametrize("keyword", ["Token", "Bearer"])
def test_an_expired_or_unknown_token_is_refused_either_way(api, nurse, patient, keyword):
    expired = api_token(nurse)
    ApiToken.objects.filter(prefix=expired[:8]).update(
        expires_at=timezone.now() - timedelta(hours=1)
    )

    for key in (expired, "0" * 40):
        api.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
        r = api.get(f"{BASE}/Patient/{patient.pk}")
        assert r.status_code == 401
        assert _outcome(r) == "login"


def test_the_capability_statement_is_public_even_to_a_user_without_a_role(api, outsider):
    api.force_authenticate(outsider)

    assert api.get(f"{BASE}/metadata").status_code == 200


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json",
        "application/json",
        "*/*",
        "application/fhir+json; fhirVersion=4.0",
        None,
    ],
)
def test_it_answers_fhir_json_to_any_json_accept_header(api, nurse, patient, accept):
    api.force_authenticate(nurse)
    headers = {"HTTP_ACCEPT": accept} if accept else {}

    r = api.get(f"{BASE}/Patient/{patient.pk}", **headers)

    assert r.status_code == 200
    assert r["Content-Type"] == "application/fhir+json"
    assert "no-store" in r["Cache-Control"]


@pytest.mark.parametrize(
    ("query", "accept"), [("", "application/fhir+xml"), ("?_format=xml", "application/fhir+json")]
)
def test_it_refuses_formats_other_than_json(api, nurse, patient, query, accept):
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Patient/{patient.pk}{query}", HTTP_ACCEPT=accept)

    assert r.status_code == 406
    assert _outcome(r) == "not-supported"


def test_it_is_read_only(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(f"{BASE}/Observation", {"resourceType": "Observation"}, format="json")

    assert r.status_code == 405
    assert _outcome(r) == "not-supported"


# --- profiles, lastUpdated and conditional reads ----------------------------------------------


def test_a_draw_whose_cancer_type_has_no_loinc_code_claims_no_profile(
    api, nurse, oncologist, settings
):
    settings.CTC_LOINC_CODES = {"breast": "67568-6", "prostate": "68123-9"}
    draw = builders.draw(
        builders.patient(oncologist, cancer_type="colorectal"), oncologist, drawn_at=START
    )
    api.force_authenticate(nurse)

    body = _observation(api, draw)

    assert body["code"] == {"text": "CellSearch circulating tumour cell count"}
    assert "profile" not in body["meta"]


def test_a_patient_claims_the_us_core_and_mcode_patient_profiles(api, nurse, patient):
    api.force_authenticate(nurse)

    meta = api.get(f"{BASE}/Patient/{patient.pk}").json()["meta"]

    assert meta["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient",
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient",
    ]


def test_last_updated_and_last_modified_are_the_last_change(api, nurse, oncologist, patient):
    draw = builders.draw(patient, oncologist, drawn_at=START)
    changed = draw.history.latest("history_date").history_date
    api.force_authenticate(nurse)

    r = api.get(f"{BASE}/Observation/{draw.pk}")

    assert r.json()["meta"]["lastUpdated"] == changed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert r["Last-Modified"] == http_date(changed.timestamp())
    assert r["ETag"].startswith('W/"')


@pytest.mark.parametrize("path", ["Patient/{patient}", "Observation/{draw}"])
def test_a_read_whose_etag_the_client_holds_is_304(api, nurse, patient, draw, path):
    api.force_authenticate(nurse)
    url = f"{BASE}/{path.format(patient=patient.pk, draw=draw.pk)}"
    first = api.get(url)

    again = api.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    other = api.get(url, HTTP_IF_NONE_MATCH='W/"something-else"')

    assert again.status_code == 304
    assert again.content == b""
    assert (again["ETag"], again["Last-Modified"]) == (first["ETag"], first["Last-Modified"])
    assert "no-store" in again["Cache-Control"]
    assert other.status_code == 200
    assert other.json() == first.json()


@pytest.mark.parametrize("path", ["Patient/{patient}", "Observation/{draw}"])
def test_a_read_not_modified_since_is_304_and_one_modified_since_is_200(
    api, nurse, patient, draw, path
):
    api.force_authenticate(nurse)
    url = f"{BASE}/{path.format(patient=patient.pk, draw=draw.pk)}"
    last_modified = api.get(url)["Last-Modified"]
    before = http_date(parse_http_date(last_modified) - 1)

    assert api.get(url, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    assert api.get(url, HTTP_IF_MODIFIED_SINCE=before).status_code == 200


def test_an_edit_makes_the_clients_copy_stale(api, nurse, oncologist, patient, draw):
    api.force_authenticate(nurse)
    url = f"{BASE}/Observation/{draw.pk}"
    etag = api.get(url)["ETag"]

    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong tube"
    )
    r = api.get(url, HTTP_IF_NONE_MATCH=etag)

    assert r.status_code == 200
    assert r.json()["status"] == "entered-in-error"


def test_an_interpretation_that_follows_another_draw_makes_the_copy_stale(
    api, nurse, oncologist, patient
):
    """The rise beyond noise (U) is against the previous draw: when that draw is marked
    entered in error, this draw's version stays, but its Observation changes."""
    builders.draw(patient, oncologist, drawn_at=START, ctc_count=0)
    wrong = builders.draw(patient, oncologist, drawn_at=START + 7 * DAY, ctc_count=9)
    rise = builders.draw(patient, oncologist, drawn_at=START + 21 * DAY, ctc_count=5)
    api.force_authenticate(nurse)
    url = f"{BASE}/Observation/{rise.pk}"
    first = api.get(url)

    services.mark_draw_entered_in_error(
        draw=wrong, version=builders.version_of(wrong), by=oncologist, reason="Other patient"
    )
    again = api.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert builders.version_of(rise) == int(first.json()["meta"]["versionId"])
    assert _codes(first.json(), "interpretation") == ["H"]
    assert again.status_code == 200
    assert _codes(again.json(), "interpretation") == ["H", "U"]


def test_a_conditional_read_is_still_recorded_in_the_access_log(api, nurse, patient):
    api.force_authenticate(nurse)
    etag = api.get(f"{BASE}/Patient/{patient.pk}")["ETag"]

    api.get(f"{BASE}/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=etag)

    assert AccessEvent.objects.filter(action="api_read", patient=patient).count() == 2


# --- every error is an OperationOutcome under /fhir/r4/, JSON under /api/ -----------------------


@pytest.mark.parametrize(
    "path", ["/fhir/r4/Encounter/1", "/fhir/r4/Patient/1/_history/1", "/fhir/r4/"]
)
def test_an_address_that_matches_nothing_under_fhir_is_a_404_operation_outcome(client, nurse, path):
    client.force_login(nurse)

    r = client.get(path)

    assert r.status_code == 404
    assert _outcome(r) == "not-found"


def test_an_address_that_matches_nothing_under_the_api_is_a_json_404(client, nurse):
    client.force_login(nurse)

    r = client.get("/api/v1/no-such-thing/")

    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert r.json() == {"detail": "Nothing is found at this address."}


def test_a_page_that_matches_nothing_is_still_an_html_page(client, nurse):
    client.force_login(nurse)

    r = client.get("/no-such-page/")

    assert r.status_code == 404
    assert r["Content-Type"].startswith("text/html")


def test_a_server_error_under_fhir_is_an_operation_outcome(client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the statement could not be built")

    monkeypatch.setattr(fhir_resources, "capability_statement", broken)
    client.raise_request_exception = False

    r = client.get(f"{BASE}/metadata")

    assert r.status_code == 500
    assert _outcome(r) == "exception"
    assert "could not be built" not in r.content.decode()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/v1/patients/", "application/json"), ("/patients/", "text/html")],
)
def test_a_server_error_elsewhere_is_json_under_the_api_and_html_for_pages(rf, path, content_type):
    r = errors.server_error(rf.get(path))

    assert r.status_code == 500
    assert r["Content-Type"].startswith(content_type)
