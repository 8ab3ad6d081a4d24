"""API tokens are kept hashed, shown once to their owner, revocable, and end with the password.

And staff, who revoke tokens and reset two-factor sign-in, can never issue a token
for someone else, read a key, or choose or read anyone's second-factor secret.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from patients.accounts import api_tokens
from patients.models import AccessAction, AccessEvent, ApiToken
from tests.builders import api_token

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-42"
TOKEN_URL = "/api/v1/auth/token/"
PAGE = "/account/api-tokens/"


def _get(api, key: str, scheme: str = "Token"):
    api.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return api.get("/api/v1/patients/")


def _obtain(api, name: str = "lab interface") -> str:
    body = {"username": "nina", "password": PASSWORD, "name": name}
    r = api.post(TOKEN_URL, body, format="json")
    assert r.status_code == 200, r.content
    return r.json()["token"]


# --- kept hashed, shown once --------------------------------------------------------------


def test_the_database_never_holds_a_working_key(api, nurse):
    key = _obtain(api)

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM patients_apitoken")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)

    assert key not in stored
    assert ApiToken.objects.get().digest == api_tokens.digest(key)
    assert _get(api, key).status_code == 200


def test_each_request_issues_a_new_token_and_both_work(api, nurse):
    first, second = _obtain(api), _obtain(api)

    assert first != second
    assert _get(api, first).status_code == 200
    assert _get(api, second).status_code == 200
    assert ApiToken.objects.filter(user=nurse).count() == 2


def test_fhir_clients_may_send_the_token_as_bearer(api, nurse):
    key = _obtain(api)

    assert _get(api, key, scheme="Bearer").status_code == 200


def test_a_key_with_a_known_prefix_but_the_wrong_rest_is_refused(api, nurse):
    key = _obtain(api)
    forged = key[:8] + ("A" if key[8] != "A" else "B") + key[9:]

    r = _get(api, forged)

    assert r.status_code == 401
    assert r.json()["detail"] == "Invalid token."


def test_the_owner_sees_the_key_once_on_the_page_that_issues_it(client, nurse):
    client.force_login(nurse)

    issued = client.post(PAGE, {"name": "ward dashboard"})
    listed = client.get(PAGE)

    token = ApiToken.objects.get(user=nurse)
    key = re.search(r'<code class="token-key">([^<]+)</code>', issued.content.decode()).group(1)
    assert key.startswith(token.prefix) and api_tokens.find(key) == token
    assert key not in listed.content.decode()
    assert f"{token.prefix}…" in listed.content.decode()
    assert "ward dashboard" in listed.content.decode()


def test_a_token_without_a_name_is_not_issued_on_the_page(client, nurse):
    client.force_login(nurse)

    r = client.post(PAGE, {"name": ""})

    assert r.status_code == 400
    assert "No token was issued" in r.content.decode()
    assert not ApiToken.objects.exists()


# --- revoked by the owner or by staff --------------------------------------------------------


def test_the_owner_revokes_a_token_on_their_page(api, client, nurse):
    key = _obtain(api)
    token = ApiToken.objects.get()
    client.force_login(nurse)

    r = client.post(PAGE, {"revoke": token.pk}, follow=True)

    assert "Revoked the API token" in r.content.decode()
    refused = _get(api, key)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


def test_nobody_revokes_another_users_token_on_their_page(api, client, nurse, oncologist):
    _obtain(api)
    token = ApiToken.objects.get()
    client.force_login(oncologist)

    r = client.post(PAGE, {"revoke": token.pk})

    assert r.status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_staff_revoke_a_token_in_admin(api, client, nurse, admin_user):
    key = _obtain(api)
    token = ApiToken.objects.get()
    client.force_login(admin_user)

    client.post(
        "/admin/patients/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    token.refresh_from_db()
    assert token.revoked_by == admin_user
    assert _get(api, key).status_code == 401


def test_staff_cannot_issue_a_token_or_change_one_in_admin(client, nurse, admin_user):
    api_token(nurse)
    token = ApiToken.objects.get()
    client.force_login(admin_user)

    added = client.post("/admin/patients/apitoken/add/", {"user": nurse.pk, "name": "mine now"})
    changed = client.post(f"/admin/patients/apitoken/{token.pk}/change/", {"name": "renamed"})
    deleted = client.post(f"/admin/patients/apitoken/{token.pk}/delete/", {"post": "yes"})

    assert added.status_code == 403
    assert changed.status_code == 403
    assert deleted.status_code == 403
    assert ApiToken.objects.get().name == "test client"


# --- ended by expiry, deactivation and any password change -------------------------------------


def test_a_password_changed_on_the_users_own_form_ends_their_tokens(api, client, nurse):
    key = _obtain(api)
    client.force_login(nurse)

    client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "another-horse-43",
            "new_password2": "another-horse-43",
        },
    )

    r = _get(api, key)
    assert r.status_code == 401
    assert "password changed" in r.json()["detail"]


def test_a_password_set_by_staff_or_the_command_line_ends_the_tokens(api, nurse):
    key = _obtain(api)

    # What admin's password form and `manage.py changepassword` both do.
    nurse.set_password("another-horse-43")
    nurse.save()

    assert _get(api, key).status_code == 401
    assert api_tokens.state(ApiToken.objects.get()) == api_tokens.TokenState.PASSWORD_CHANGED


def test_a_deactivated_account_s_tokens_stop_working(api, nurse):
    key = _obtain(api)

    nurse.is_active = False
    nurse.save()

    assert _get(api, key).status_code == 401


# --- in the access log -----------------------------------------------------------------------


def test_issuing_and_revoking_are_in_the_access_log_with_the_clients_address(api, client, nurse):
    body = {"username": "nina", "password": PASSWORD, "name": "lab interface"}
    api.post(TOKEN_URL, body, format="json", REMOTE_ADDR="198.51.100.7")
    token = ApiToken.objects.get()
    client.force_login(nurse)
    client.post(PAGE, {"revoke": token.pk}, REMOTE_ADDR="198.51.100.8")

    issued = AccessEvent.objects.get(action=AccessAction.TOKEN_ISSUED)
    revoked = AccessEvent.objects.get(action=AccessAction.TOKEN_REVOKED)
    assert issued.username == revoked.username == "nina"
    assert issued.target == revoked.target == f"API token {token.prefix} of user #{nurse.pk}"
    assert (issued.client_address, revoked.client_address) == ("198.51.100.7", "198.51.100.8")


def test_issuing_on_the_page_and_revoking_in_admin_log_the_clients_address(
    client, nurse, admin_user
):
    client.force_login(nurse)
    client.post(PAGE, {"name": "laptop"}, REMOTE_ADDR="198.51.100.9")
    token = ApiToken.objects.get()
    client.force_login(admin_user)
    client.post(
        "/admin/patients/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        REMOTE_ADDR="198.51.100.10",
    )

    issued = AccessEvent.objects.get(action=AccessAction.TOKEN_ISSUED)
    revoked = AccessEvent.objects.get(action=AccessAction.TOKEN_REVOKED)
    assert (issued.username, revoked.username) == ("nina", admin_user.username)
    assert (issued.client_address, revoked.client_address) == ("198.51.100.9", "198.51.100.10")


# --- two-factor secrets: staff reset them, never set or read them -----------------------------


@pytest.fixture
def nurse_devices(nurse):
    device = TOTPDevice.objects.create(user=nurse, name="phone", confirmed=True)
    static = StaticDevice.objects.create(user=nurse, name="backup", confirmed=True)
    StaticToken.objects.create(device=static, token="rcv12345")
    return device, static


def test_staff_cannot_add_a_totp_device_with_a_key_of_their_choosing(
    client, admin_user, nurse, nurse_devices
):
    client.force_login(admin_user)
    chosen = "3132333435363738393031323334353637383930"

    r = client.post(
        "/admin/otp_totp/totpdevice/add/",
        {"user": nurse.pk, "name": "staff's phone", "key": chosen, "confirmed": "on"},
    )

    assert r.status_code == 403
    assert not TOTPDevice.objects.filter(key=chosen).exists()


def test_staff_never_see_a_totp_secret_or_its_qr_code(client, admin_user, nurse_devices):
    device, _ = nurse_devices
    client.force_login(admin_user)

    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    config = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/")
    qrcode = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/")
    changed = client.post(
        f"/admin/otp_totp/totpdevice/{device.pk}/change/",
        {"user": device.user_id, "name": "phone", "key": "00" * 20, "confirmed": "on"},
    )

    assert page.status_code == 200
    assert device.key not in page.content.decode()
    assert str(totp(device.bin_key)) not in config.content.decode()
    assert config.status_code in (302, 404) and qrcode.status_code in (302, 404)
    assert changed.status_code == 403
    device.refresh_from_db()
    assert device.key != "00" * 20


def test_staff_never_see_or_add_recovery_codes(client, admin_user, nurse_devices):
    _, static = nurse_devices
    client.force_login(admin_user)

    page = client.get(f"/admin/otp_static/staticdevice/{static.pk}/change/")
    added = client.post(
        f"/admin/otp_static/staticdevice/{static.pk}/change/",
        {
            "user": static.user_id,
            "name": "backup",
            "confirmed": "on",
            "token_set-TOTAL_FORMS": "1",
            "token_set-INITIAL_FORMS": "0",
            "token_set-0-token": "staff0001",
        },
    )

    assert "rcv12345" not in page.content.decode()
    assert added.status_code == 403
    assert not StaticToken.objects.filter(token="staff0001").exists()


def test_a_staff_reset_of_two_factor_sign_in_is_in_the_access_log(
    client, admin_user, nurse, nurse_devices
):
    device, _ = nurse_devices
    client.force_login(admin_user)

    client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})

    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    reset = AccessEvent.objects.get(action=AccessAction.MFA_RESET)
    assert reset.username == "ada"
    assert reset.target == f"TOTP device of user #{nurse.pk} removed by staff"


def test_a_user_without_tokens_has_an_empty_list(client, nurse):
    client.force_login(nurse)

    r = client.get(PAGE)

    assert r.status_code == 200
    assert "You have no API tokens." in r.content.decode()
