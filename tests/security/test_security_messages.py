"""A message that names a patient ("Acknowledged cycle 1 for Jane Doe.") is kept in the
server-side session, never in a cookie the browser stores and sends back."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from pytest_django.asserts import assertContains

pytestmark = pytest.mark.django_db

NEW_PATIENT = {
    "mrn": "F-100",
    "given_name": "Ann",
    "family_name": "Lee",
    "birth_date": "1958-03-02",
    "sex": "female",
    "cancer_type": "colorectal",
    "active": "on",
}


def _cookie_problems(response, *texts: str) -> list[str]:
    """Cookies the answer sets that carry messages, or any of `texts`."""
    problems = []
    for name, morsel in response.cookies.items():
        if name == CookieStorage.cookie_name and morsel.value:
            problems.append(f"a {name!r} cookie is set")
        problems += [f"{name!r} carries {text!r}" for text in texts if text in morsel.value]
    return problems


def test_messages_are_stored_in_the_session():
    assert settings.MESSAGE_STORAGE == "django.contrib.messages.storage.session.SessionStorage"


def test_an_acknowledgement_message_is_in_no_cookie_and_shows_on_the_next_page(
    client, nurse, patient, cycle
):
    client.force_login(nurse)
    text = (
        f"Acknowledged cycle {cycle.number} of {cycle.therapy_line.regimen} for "
        f"{patient.family_name}, {patient.given_name} (MRN {patient.mrn})."
    )

    posted = client.post(f"/cycles/{cycle.pk}/acknowledge/", {"note": "Called the patient"})

    assert posted.status_code == 302
    assert _cookie_problems(posted, text, patient.family_name) == []
    shown = client.get(posted["Location"])
    assertContains(shown, text)
    assert _cookie_problems(shown, text, patient.family_name) == []
    assert text not in client.get(posted["Location"]).content.decode()  # shown once


def test_a_registration_message_naming_the_patient_is_in_no_cookie(client, oncologist):
    client.force_login(oncologist)

    posted = client.post("/patients/new/", NEW_PATIENT)

    assert posted.status_code == 302
    assert _cookie_problems(posted, "Ann Lee", "Lee") == []
    assertContains(client.get(posted["Location"]), "Registered Ann Lee.")
