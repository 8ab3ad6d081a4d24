"""Signing in and out."""

from __future__ import annotations

import pytest
from pytest_django.asserts import assertContains, assertRedirects

pytestmark = pytest.mark.django_db


def test_the_login_page_is_open_to_anonymous_users(client):
    r = client.get("/accounts/login/")

    assertContains(r, '<label for="id_username">Username</label>', html=True)


def test_a_nurse_signs_in_and_lands_on_the_worklist(client, nurse):
    r = client.post(
        "/accounts/login/", {"username": "nina", "password": "correct-horse-42"}, follow=True
    )

    assertContains(r, "Pre-cycle worklist")
    assert r.redirect_chain[-1][0] == "/"


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client, nurse):
    r = client.post("/accounts/login/", {"username": "nina", "password": "nope"})

    assertContains(r, "Please enter a correct username and password")
    assert "_auth_user_id" not in client.session


def test_signing_out_needs_a_post_and_ends_the_session(client, nurse):
    client.force_login(nurse)

    assert client.get("/accounts/logout/").status_code == 405
    r = client.post("/accounts/logout/")

    assertRedirects(r, "/accounts/login/", fetch_redirect_response=False)
    assert "_auth_user_id" not in client.session
