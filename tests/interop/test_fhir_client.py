"""A real FHIR client against the running server: fhirclient (SMART on FHIR's Python client).

Over real HTTP (pytest-django's live server): the client reads the
CapabilityStatement without credentials, as it does before anything else,
then searches with a Bearer token, follows the Bundle's `next` links, and
parses every Bundle and Observation with its strict R4 models. Every
Observation is validated with `fhir.resources` as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.observation import Observation as ValidatedObservation
from fhirclient.auth import FHIROAuth2Auth
from fhirclient.models.observation import Observation
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient as ClientPatient
from fhirclient.server import FHIRServer, FHIRUnauthorizedException
from requests import HTTPError

from patients.models import DrawStatus
from tests import builders
from tests.builders import api_token

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 2, 2, 8, 30, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def server(live_server) -> Iterator[FHIRServer]:
    """fhirclient's server, its capabilities read as a client reads them: anonymously."""
    fhir = FHIRServer(None, base_uri=f"{live_server.url}/fhir/r4/")
    fhir.get_capability()
    yield fhir
    fhir.session.close()


def _signed_in(server: FHIRServer, user) -> FHIRServer:
    auth = FHIROAuth2Auth()
    auth.access_token = api_token(user)  # sent as "Bearer <key>"
    server.auth = auth
    return server


def test_the_client_reads_the_capability_statement_without_credentials(server):
    statement = server.capabilityStatement

    observation = next(r for r in statement.rest[0].resource if r.type == "Observation")
    assert statement.fhirVersion == "4.0.1"
    assert {p.name for p in observation.searchParam} >= {
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "status",
    }


def test_the_client_searches_pages_and_parses_every_observation(server, nurse, oncologist, patient):
    draws = builders.draws(patient, oncologist, range(7), first=START, every_days=7)
    builders.draw(patient, oncologist, drawn_at=START + 70 * DAY, status=DrawStatus.PENDING)
    builders.draw(builders.patient(oncologist), oncologist, drawn_at=START)  # someone else's
    _signed_in(server, nurse)

    search = Observation.where(
        struct={
            "patient": f"Patient/{patient.pk}",
            "code": "http://loinc.org|67568-6",
            "category": "laboratory",
            "status": "final",
            "date": "ge2026-02-09",
            "_sort": "-date",
            "_count": "2",
        }
    )
    bundles = list(search.perform_iter(server))
    found = [entry.resource for bundle in bundles for entry in bundle.entry or []]

    assert [len(bundle.entry) for bundle in bundles] == [2, 2, 2]
    assert {bundle.total for bundle in bundles} == {6}
    assert all(isinstance(resource, Observation) for resource in found)
    assert [resource.id for resource in found] == [str(d.pk) for d in reversed(draws[1:])]
    for resource in found:
        ValidatedObservation.model_validate(resource.as_json())
        assert resource.valueQuantity.system == "http://unitsofmeasure.org"
        assert resource.valueQuantity.code == "{cells}/(7500.uL)"
        assert resource.subject.reference == f"Patient/{patient.pk}"


def test_the_client_reads_a_pending_draw_with_its_data_absent_reason(
    server, nurse, oncologist, patient
):
    pending = builders.draw(patient, oncologist, drawn_at=START, status=DrawStatus.PENDING)
    _signed_in(server, nurse)

    observation = Observation.read(str(pending.pk), server)

    assert observation.status == "registered"
    assert observation.dataAbsentReason.coding[0].code == "temp-unknown"
    ValidatedObservation.model_validate(observation.as_json())


def test_the_client_reads_a_patient(server, nurse, patient):
    _signed_in(server, nurse)

    read = ClientPatient.read(str(patient.pk), server)

    assert (read.name[0].family, read.birthDate.isostring) == ("Doe", "1960-05-17")


def test_an_unsupported_parameter_comes_back_as_an_outcome_entry(
    server, nurse, oncologist, patient
):
    builders.draw(patient, oncologist, drawn_at=START)
    _signed_in(server, nurse)

    bundle = next(
        Observation.where(struct={"patient": str(patient.pk), "_has": "x"}).perform_iter(server)
    )

    outcome = bundle.entry[0]
    assert isinstance(outcome.resource, OperationOutcome)
    assert outcome.search.mode == "outcome"
    assert outcome.resource.issue[0].code == "not-supported"


def test_without_a_token_the_client_is_told_to_authenticate(server, patient):
    with pytest.raises(FHIRUnauthorizedException) as refused:
        Observation.where(struct={"patient": str(patient.pk)}).perform_iter(server).__next__()

    assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"
    assert refused.value.response.json()["resourceType"] == "OperationOutcome"


def test_another_servers_patient_is_refused_to_the_client(server, nurse, patient):
    _signed_in(server, nurse)
    search = Observation.where(
        struct={"subject": f"https://elsewhere.example.org/fhir/Patient/{patient.pk}"}
    )

    with pytest.raises(HTTPError) as refused:
        next(search.perform_iter(server))

    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["issue"][0]["code"] == "invalid"
