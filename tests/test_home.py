"""The start page and sign-in."""

from __future__ import annotations

import pytest
from pytest_django.asserts import assertContains, assertRedirects

pytestmark = pytest.mark.django_db


def test_it_redirects_anonymous_users_to_the_login_page(client):
    r = client.get("/")

    assertRedirects(r, "/accounts/login/?next=/", fetch_redirect_response=False)


def test_the_login_page_is_open_and_signs_a_nurse_in(client, nurse):
    assert client.get("/accounts/login/").status_code == 200

    r = client.post(
        "/accounts/login/", {"username": "nina", "password": "correct-horse-42"}, follow=True
    )

    assertContains(r, "Your role: <strong>nurse</strong>", html=False)


def test_it_tells_a_user_without_a_role_to_ask_for_one(client, outsider):
    client.force_login(outsider)

    r = client.get("/")

    assertContains(r, "has no clinical role yet")
    assert "patients, " not in r.content.decode()


def test_it_shows_the_record_size_to_clinicians(client, oncologist, patient):
    client.force_login(oncologist)

    r = client.get("/")

    assertContains(r, "1 patient, 0 CTC draws on record")
