"""The page header says who is signed in by their name, as colleagues know them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_header_names_the_signed_in_user_by_full_name(client, nurse):
    nurse.first_name, nurse.last_name = "Nina", "Novak"
    nurse.save()
    client.force_login(nurse)

    page = client.get("/patients/").content.decode()

    assert '<span class="who">Nina Novak</span>' in page


def test_a_user_without_a_name_is_shown_by_username(client, nurse):
    nurse.first_name = nurse.last_name = ""
    nurse.save()
    client.force_login(nurse)

    page = client.get("/patients/").content.decode()

    assert '<span class="who">nina</span>' in page
