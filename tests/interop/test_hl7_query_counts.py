"""What one HL7 lab message costs in queries: the same whatever the patient's history.

A lab sends a burst of messages after an instrument run, each answered only once
it is stored; every query of a message is paid once per result. The count must
not grow with the draws, cycles and acknowledgements the patient already has.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients.models import CTCDraw, Patient
from tests import builders

pytestmark = pytest.mark.django_db

URL = "/api/v1/hl7/oru/"


def _message(mrn: str, accession: str, drawn: datetime, count: int) -> bytes:
    when = drawn.strftime("%Y%m%d%H%M%S+0000")
    segments = [
        f"MSH|^~\\&|CELLSEARCH_LIS|CITYLAB|CTCTRACK|ONCOLOGY|{when}||ORU^R01^ORU_R01|"
        f"C-{accession}|P|2.5.1|||AL|NE",
        f"PID|1||{mrn}^^^GENHOSP^MR||Doe^Jane||19600517|F",
        f"ORC|RE|ORD-{accession}|{accession}^CITYLAB||CM",
        f"OBR|1|ORD-{accession}|{accession}^CITYLAB|67568-6^Circulating tumor cells^LN|||"
        f"{when}||7.5^mL|||||||||||||{when}|||F",
        f"OBX|1|NM|67568-6^Circulating tumor cells^LN|1|{count}|cells/7.5 mL|<5||||F|||{when}",
        f"SPM|1|{accession}&CITYLAB||119297000^Blood specimen^SCT|||||||||7.5^mL|||||{when}",
    ]
    return ("\r".join(segments) + "\r").encode()


def _history(patient, by, draws: int) -> None:
    """`draws` results a week apart (some high, some needing review) and a cycle every
    other week, given, so that the rules and the ranks have something to work on."""
    line = builders.therapy_line(patient, by, start_date=date(2024, 1, 8), cycle_length_days=14)
    builders.cycles(line, by, max(draws // 2, 1), status="given")
    builders.draws(patient, by, [(k * 7) % 23 for k in range(draws)], first=date(2024, 1, 1))


def _sent(api, patient, k: int) -> list[str]:
    """The queries of one message for `patient` (its `k`th), answered AA."""
    body = _message(
        patient.mrn, f"CS-Q-{k:04d}", datetime(2026, 3, 1, 8, tzinfo=UTC) + timedelta(hours=k), 7
    )
    with CaptureQueriesContext(connection) as captured:
        answer = api.generic("POST", URL, data=body, content_type="text/plain")
    assert b"MSA|AA|" in answer.content, answer.content
    return [q["sql"] for q in captured.captured_queries]


def test_a_message_costs_the_same_queries_for_a_patient_with_1_or_30_draws(
    api, oncologist, patient
):
    api.force_authenticate(oncologist)
    seasoned = builders.patient(oncologist, mrn="MRN0030", family_name="Doe")
    _history(patient, oncologist, 1)
    _history(seasoned, oncologist, 30)
    _sent(api, patient, 0)  # the first message of a connection sets up what it keeps

    few = _sent(api, patient, 1)
    many = _sent(api, seasoned, 2)

    assert len(few) == len(many), "\n".join(many)
    assert CTCDraw.objects.filter(accession__startswith="CS-Q-").count() == 3


def test_a_message_asks_the_database_no_constraint_and_reads_the_patient_once(
    api, oncologist, patient
):
    api.force_authenticate(oncologist)
    _history(patient, oncologist, 3)
    before = Patient.objects.get(pk=patient.pk).data_version

    queries = _sent(api, patient, 1)

    assert not [q for q in queries if '"_check"' in q]  # Django's constraint validation
    patient_reads = [q for q in queries if q.startswith('SELECT "patients_patient"."id"')]
    assert len(patient_reads) == 1  # its MRN; the bump of its data version returns it again
    assert Patient.objects.get(pk=patient.pk).data_version == before + 1  # charts drawn anew
