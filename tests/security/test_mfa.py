"""Two-factor sign-in: set-up, the second step at sign-in, recovery codes, turning it off,
enforcement when CTCTRACK_REQUIRE_MFA is on, the API token, and staff resets in admin.

Codes are real: computed from the device's key with django-otp's own TOTP.
"""

from __future__ import annotations

import re
import time

import pytest
from axes.models import AccessAttempt
from django_otp import DEVICE_ID_SESSION_KEY, user_has_device
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients.accounts.mfa import replace_recovery_codes
from patients.accounts.middleware import has_device
from patients.models import ApiToken
from tests.builders import api_token

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-42"
TOKEN_URL = "/api/v1/auth/token/"


def next_code(device: TOTPDevice) -> str:
    """The code the device accepts next: now, or the step after the last one used."""
    device.refresh_from_db()
    now_step = int((time.time() - device.t0) // device.step) + device.drift
    step = max(now_step, device.last_t + 1)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    totp.time = device.t0 + step * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    return f"{(int(next_code(device)) + 1) % 1_000_000:06d}"


def enrol(user) -> tuple[TOTPDevice, list[str]]:
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return device, replace_recovery_codes(user)


def sign_in_fully(client, user, device) -> None:
    """Password and second factor passed: the state django-otp keeps in the session."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def sign_in_with_password(client, username: str = "nina") -> None:
    client.post("/accounts/login/", {"username": username, "password": PASSWORD})


@pytest.fixture
def required(settings):
    settings.CTCTRACK_REQUIRE_MFA = True


# --- set-up -----------------------------------------------------------------------------------


def test_setup_shows_a_qr_code_the_key_and_the_otpauth_link(client, nurse):
    client.force_login(nurse)

    r = client.get("/accounts/mfa/setup/")

    device = TOTPDevice.objects.get(user=nurse)
    assert not device.confirmed
    assertContains(r, '<svg width="')
    assertContains(r, 'id="qr-path"')
    assertContains(r, "otpauth://totp/CTC%20Track%3Anina?secret=")
    assert len(_secret(r).replace(" ", "")) == 32  # 20 random bytes in base32


def _secret(response) -> str:
    return re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', response.content.decode())[1]


def test_setup_shows_the_same_key_until_it_is_confirmed(client, nurse):
    client.force_login(nurse)

    first = client.get("/accounts/mfa/setup/")
    again = client.get("/accounts/mfa/setup/")

    assert TOTPDevice.objects.filter(user=nurse).count() == 1
    assert _secret(first) == _secret(again)


def test_a_first_code_confirms_the_app_and_shows_ten_recovery_codes_once(client, nurse):
    client.force_login(nurse)
    client.get("/accounts/mfa/setup/")
    device = TOTPDevice.objects.get(user=nurse)

    r = client.post("/accounts/mfa/setup/", {"code": next_code(device)})

    device.refresh_from_db()
    assert device.confirmed
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", r.content.decode())
    assert len(codes) == 10
    assert sorted(StaticToken.objects.values_list("token", flat=True)) == sorted(codes)
    assertContains(r, "they are shown only this once")
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id


def test_a_wrong_first_code_confirms_nothing(client, nurse):
    client.force_login(nurse)
    client.get("/accounts/mfa/setup/")
    device = TOTPDevice.objects.get(user=nurse)

    r = client.post("/accounts/mfa/setup/", {"code": wrong_code(device)})

    assertContains(r, "This code is not valid", status_code=400)
    assertContains(r, '<label for="id_code">Code:</label>', html=True, status_code=400)
    device.refresh_from_db()
    assert not device.confirmed
    assert not StaticDevice.objects.exists()


def test_an_empty_code_is_asked_for_by_name(client, nurse):
    client.force_login(nurse)

    r = client.post("/accounts/mfa/setup/", {"code": ""})

    assertContains(r, "Enter a code.", status_code=400)


def test_a_recovery_code_cannot_confirm_a_new_app(client, nurse):
    _, codes = enrol(nurse)
    TOTPDevice.objects.filter(user=nurse).delete()  # e.g. reset by staff, codes kept
    sign_in_fully(client, nurse, StaticDevice.objects.get(user=nurse))
    client.get("/accounts/mfa/setup/")

    r = client.post("/accounts/mfa/setup/", {"code": codes[0]})

    assert r.status_code == 400
    assert not TOTPDevice.objects.filter(user=nurse, confirmed=True).exists()


# --- the second step at sign-in ----------------------------------------------------------------


def test_a_user_with_an_app_is_asked_for_a_code_after_the_password(client, nurse):
    enrol(nurse)

    r = client.post(
        "/accounts/login/", {"username": "nina", "password": PASSWORD, "next": "/patients/"}
    )
    r = client.get(r["Location"])

    assertRedirects(r, "/accounts/mfa/verify/?next=/patients/", fetch_redirect_response=False)


def test_every_page_leads_to_the_code_until_it_is_entered(client, nurse, patient):
    enrol(nurse)
    sign_in_with_password(client)

    pages = ["/", "/patients/", f"/patients/{patient.pk}/", f"/patients/{patient.pk}/chart.svg"]

    for url in pages:
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/mfa/verify/"), url


def test_the_right_code_completes_sign_in_with_a_new_session_key(client, nurse):
    device, _ = enrol(nurse)
    sign_in_with_password(client)
    half_signed_in = client.session.session_key

    r = client.post("/accounts/mfa/verify/", {"code": next_code(device), "next": "/patients/"})

    assertRedirects(r, "/patients/", fetch_redirect_response=False)
    assert client.session.session_key != half_signed_in
    assert client.get("/patients/").status_code == 200


def test_a_recovery_code_works_once(client, nurse):
    _, codes = enrol(nurse)
    sign_in_with_password(client)

    first = client.post("/accounts/mfa/verify/", {"code": codes[0].upper()})
    client.post("/accounts/logout/")
    sign_in_with_password(client)
    second = client.post("/accounts/mfa/verify/", {"code": codes[0]})

    assertRedirects(first, "/", fetch_redirect_response=False)
    assertContains(second, "This code is not valid", status_code=400)
    assert StaticToken.objects.count() == 9


def test_a_wrong_code_keeps_the_user_out(client, nurse):
    device, _ = enrol(nurse)
    sign_in_with_password(client)

    r = client.post("/accounts/mfa/verify/", {"code": wrong_code(device)})

    assertContains(r, "This code is not valid", status_code=400)
    assert client.get("/patients/").status_code == 302


def test_after_a_wrong_code_the_app_waits_before_the_next_try(client, nurse):
    device, _ = enrol(nurse)
    sign_in_with_password(client)
    client.post("/accounts/mfa/verify/", {"code": wrong_code(device)})

    r = client.post("/accounts/mfa/verify/", {"code": next_code(device)})

    assertContains(r, "Too many wrong codes: try again after", status_code=400)


def test_five_wrong_codes_lock_the_sign_in_and_end_the_session(client, nurse):
    device, _ = enrol(nurse)
    sign_in_with_password(client)

    for _ in range(5):
        r = client.post("/accounts/mfa/verify/", {"code": wrong_code(device)})

    assertContains(r, "Too many failed sign-in attempts", status_code=429)
    assert "_auth_user_id" not in client.session
    locked = client.post("/accounts/login/", {"username": "nina", "password": PASSWORD})
    assert locked.status_code == 429


def test_without_an_app_mfa_is_optional_by_default(client, nurse, settings):
    assert settings.CTCTRACK_REQUIRE_MFA is False  # DEBUG=True, as for `make test`
    sign_in_with_password(client)

    assert client.get("/patients/").status_code == 200


# --- managing it --------------------------------------------------------------------------------


def test_the_overview_shows_the_app_and_the_codes_left(client, nurse):
    device, _ = enrol(nurse)
    sign_in_fully(client, nurse, device)

    r = client.get("/accounts/mfa/")

    assertContains(r, "Two-factor sign-in is <strong>on</strong>")
    assertContains(r, "You have <strong>10</strong> unused recovery codes.")


def test_new_recovery_codes_replace_the_old_ones(client, nurse):
    device, old = enrol(nurse)
    sign_in_fully(client, nurse, device)

    r = client.post("/accounts/mfa/recovery-codes/", {"codes-code": next_code(device)})

    new = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", r.content.decode())
    assert len(new) == 10
    assert set(StaticToken.objects.values_list("token", flat=True)) == set(new)
    assert not set(old) & set(new)


def test_new_recovery_codes_need_a_fresh_code(client, nurse):
    device, old = enrol(nurse)
    sign_in_fully(client, nurse, device)

    r = client.post("/accounts/mfa/recovery-codes/", {"codes-code": wrong_code(device)})

    assertContains(r, "This code is not valid", status_code=400)
    assert set(StaticToken.objects.values_list("token", flat=True)) == set(old)


def test_turning_it_off_removes_the_app_and_the_recovery_codes(client, nurse):
    device, _ = enrol(nurse)
    sign_in_fully(client, nurse, device)

    r = client.post("/accounts/mfa/disable/", {"disable-code": next_code(device)})

    assertRedirects(r, "/accounts/mfa/", fetch_redirect_response=False)
    assert not TOTPDevice.objects.exists() and not StaticDevice.objects.exists()


def test_turning_it_off_needs_a_fresh_code(client, nurse):
    device, _ = enrol(nurse)
    sign_in_fully(client, nurse, device)

    r = client.post("/accounts/mfa/disable/", {"disable-code": wrong_code(device)})

    assertContains(r, "This code is not valid", status_code=400)
    assert TOTPDevice.objects.filter(user=nurse).exists()


def test_where_it_is_required_turning_it_off_leads_to_setting_up_a_new_app(client, nurse, required):
    device, codes = enrol(nurse)
    sign_in_fully(client, nurse, device)

    r = client.post("/accounts/mfa/disable/", {"disable-code": codes[0]})

    assertRedirects(r, "/accounts/mfa/setup/", fetch_redirect_response=False)
    assert client.get("/patients/")["Location"].startswith("/accounts/mfa/setup/")


# --- when it is required ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/patients/", "/accounts/mfa/", "/admin/"])
def test_when_required_a_user_without_an_app_must_set_one_up_first(client, nurse, required, url):
    client.force_login(nurse)

    r = client.get(url)

    assertRedirects(r, f"/accounts/mfa/setup/?next={url}", fetch_redirect_response=False)


def test_when_required_a_user_with_an_app_must_enter_a_code(client, nurse, required):
    enrol(nurse)
    client.force_login(nurse)

    r = client.get("/patients/")

    assertRedirects(r, "/accounts/mfa/verify/?next=/patients/", fetch_redirect_response=False)


def test_when_required_the_api_refuses_a_session_without_the_second_factor(client, nurse, required):
    client.force_login(nurse)

    r = client.get("/api/v1/patients/")

    assert r.status_code == 403
    assert "Two-factor sign-in is not complete" in r.json()["detail"]


def test_when_required_a_fully_signed_in_user_works_normally(client, nurse, patient, required):
    device, _ = enrol(nurse)
    sign_in_fully(client, nurse, device)

    assert client.get(f"/patients/{patient.pk}/").status_code == 200
    assert client.get("/api/v1/patients/").status_code == 200


def test_when_required_signing_in_and_out_stay_open(client, nurse, required):
    client.force_login(nurse)

    assert client.get("/accounts/login/").status_code == 200
    assertRedirects(client.post("/accounts/logout/"), "/accounts/login/")


def test_when_required_anonymous_users_still_go_to_the_login_page(client, required):
    r = client.get("/patients/")

    assertRedirects(r, "/accounts/login/?next=/patients/", fetch_redirect_response=False)


# --- staff reset in admin -----------------------------------------------------------------------


def test_staff_reset_a_users_app_in_admin_and_the_user_sets_up_again(
    client, nurse, admin_user, required
):
    device, _ = enrol(nurse)
    codes = StaticDevice.objects.get(user=nurse)
    admin_device, _ = enrol(admin_user)
    sign_in_fully(client, admin_user, admin_device)

    app = client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    recovery = client.post(f"/admin/otp_static/staticdevice/{codes.pk}/delete/", {"post": "yes"})

    assert app.status_code == recovery.status_code == 302
    assert not TOTPDevice.objects.filter(user=nurse).exists()
    assert not StaticDevice.objects.filter(user=nurse).exists()
    client.force_login(nurse)
    assert client.get("/")["Location"].startswith("/accounts/mfa/setup/")


def test_admin_never_shows_a_users_secret_key(client, nurse, admin_user):
    device, _ = enrol(nurse)
    client.force_login(admin_user)

    r = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")

    assert r.status_code == 200
    assertNotContains(r, device.key)


# --- the API token ------------------------------------------------------------------------------


def test_a_user_with_an_app_needs_a_code_for_an_api_token(api, nurse):
    device, _ = enrol(nurse)

    without = api.post(TOKEN_URL, {"username": "nina", "password": PASSWORD}, format="json")
    wrong = api.post(
        TOKEN_URL,
        {"username": "nina", "password": PASSWORD, "otp_token": wrong_code(device)},
        format="json",
    )

    assert without.status_code == 400 and "otp_token" in without.json()
    assert wrong.status_code == 400 and "otp_token" in wrong.json()
    assert not ApiToken.objects.exists()


def test_a_user_with_an_app_gets_a_token_with_a_code(api, nurse):
    device, _ = enrol(nurse)

    r = api.post(
        TOKEN_URL,
        {"username": "nina", "password": PASSWORD, "otp_token": next_code(device)},
        format="json",
    )

    assert r.status_code == 200
    assert r.json()["token"][:8] == ApiToken.objects.get(user=nurse).prefix


def test_when_required_a_user_without_an_app_gets_no_token(api, nurse, required):
    r = api.post(TOKEN_URL, {"username": "nina", "password": PASSWORD}, format="json")

    assert r.status_code == 403
    assert not ApiToken.objects.exists()


def test_when_required_a_token_issued_after_both_factors_keeps_working(api, nurse, required):
    # A lab interface's credential: obtained with a code once, then used alone.
    token_key = api_token(nurse)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")

    assert api.get("/api/v1/patients/").status_code == 200


def test_wrong_codes_at_the_token_endpoint_count_towards_the_lockout(api, nurse):
    device, _ = enrol(nurse)
    body = {"username": "nina", "password": PASSWORD, "otp_token": "000000"}

    for _ in range(5):
        r = api.post(TOKEN_URL, {**body, "otp_token": wrong_code(device)}, format="json")

    assert r.status_code == 429
    assert AccessAttempt.objects.get(username="nina").failures_since_start == 5


# --- the device look-up on every request of a user who has not passed the second step ------


@pytest.mark.parametrize(
    "devices, expected",
    [
        ([], False),
        ([("totp", False)], False),  # set-up begun, never confirmed
        ([("totp", True)], True),
        ([("static", True)], True),  # only recovery codes left
        ([("totp", False), ("static", True)], True),
    ],
)
def test_has_device_answers_as_django_otp_does_in_one_query(
    nurse, django_assert_num_queries, devices, expected
):
    kinds = {"totp": TOTPDevice, "static": StaticDevice}
    for kind, confirmed in devices:
        kinds[kind].objects.create(user=nurse, name=kind, confirmed=confirmed)

    with django_assert_num_queries(1):
        found = has_device(nurse)

    assert found is expected is user_has_device(nurse)
