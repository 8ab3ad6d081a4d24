"""Messages from other systems are reads too: each HL7 message processed is an
"import" event naming the patient it touched (CSV imports: tests/interop/test_csv_pages.py)."""

from __future__ import annotations

import pytest

from patients.models import AccessAction, AccessEvent
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

DATA = SAMPLES / "hl7"


def test_each_hl7_message_processed_is_an_import_event(api, oncologist, patient):
    api.force_authenticate(oncologist)
    body = (DATA / "oru_r01_final.hl7").read_bytes()

    r = api.generic("POST", "/api/v1/hl7/oru/", data=body, content_type="text/plain")

    assert r.status_code == 200
    event = AccessEvent.objects.get(action=AccessAction.IMPORT)
    assert (event.username, event.patient, event.outcome) == ("olivia", patient, "success")
    assert event.target == "HL7 CL260302-0001: AA"
