"""The first authenticator app, enrolled with a one-time code given out of band.

With CTCTRACK_MFA_ENROLMENT_REQUIRED, someone who has learnt a user's password
cannot enrol their own phone in the user's place: the set-up page shows no secret
until the enrolment code staff gave the user is entered.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from pytest_django.asserts import assertContains, assertNotContains

from patients.accounts.mfa import issue_enrolment_code
from patients.models import AccessAction, AccessEvent, MfaEnrolment

from .test_mfa import enrol, next_code, sign_in_fully

pytestmark = pytest.mark.django_db

SETUP = "/accounts/mfa/setup/"


@pytest.fixture
def enrolment_required(settings):
    settings.CTCTRACK_REQUIRE_MFA = True
    settings.CTCTRACK_MFA_ENROLMENT_REQUIRED = True


def _staff_issue(client, admin_user, user) -> str:
    device, _ = enrol(admin_user)
    sign_in_fully(client, admin_user, device)
    r = client.post(
        "/admin/auth/user/",
        {"action": "issue_enrolment_codes", "_selected_action": [user.pk]},
        follow=True,
    )
    client.logout()
    return re.search(r"Enrolment code for \w+: ([A-Z0-9-]{14})", r.content.decode())[1]


def test_without_the_code_the_setup_shows_no_secret(client, nurse, enrolment_required):
    client.force_login(nurse)

    r = client.get(SETUP)

    assertContains(r, "Enrolment code")
    assertNotContains(r, "otpauth://")
    assert not TOTPDevice.objects.filter(user=nurse).exists()


def test_a_wrong_code_is_refused_and_counted_as_a_failed_sign_in(client, nurse, enrolment_required):
    issue_enrolment_code(nurse, by=nurse)
    client.force_login(nurse)

    r = client.post(SETUP, {"enrolment_code": "ABCD-EFGH-JKMN"})

    assertContains(r, "This enrolment code is not valid", status_code=400)
    assertNotContains(r, "otpauth://", status_code=400)
    assert AccessEvent.objects.filter(action=AccessAction.LOGIN_FAILED).exists()


def test_staff_issue_a_code_that_enrols_once(client, nurse, admin_user, enrolment_required):
    code = _staff_issue(client, admin_user, nurse)
    client.force_login(nurse)

    opened = client.post(SETUP, {"enrolment_code": code.lower()}, follow=True)
    device = TOTPDevice.objects.get(user=nurse)
    confirmed = client.post(SETUP, {"code": next_code(device)})

    assertContains(opened, "otpauth://totp/")
    assertContains(confirmed, "they are shown only this once")
    device.refresh_from_db()
    assert device.confirmed
    assert MfaEnrolment.objects.get(user=nurse).used_at is not None
    issued = AccessEvent.objects.get(action=AccessAction.MFA_ENROLMENT)
    assert (issued.username, issued.target) == (
        "ada",
        f"two-factor enrolment code for user #{nurse.pk}",
    )
    assert code not in issued.target


def test_a_used_or_expired_or_superseded_code_enrols_nobody(
    client, nurse, oncologist, admin_user, enrolment_required
):
    used = issue_enrolment_code(nurse, by=admin_user)
    MfaEnrolment.objects.update(used_at=timezone.now())
    expired = issue_enrolment_code(oncologist, by=admin_user)
    MfaEnrolment.objects.filter(user=oncologist).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    superseded = issue_enrolment_code(nurse, by=admin_user)
    issue_enrolment_code(nurse, by=admin_user)

    for user, code in ((nurse, used), (oncologist, expired), (nurse, superseded)):
        client.force_login(user)
        r = client.post(SETUP, {"enrolment_code": code})
        assertContains(r, "This enrolment code is not valid", status_code=400)


def test_a_code_is_the_users_own(client, nurse, oncologist, admin_user, enrolment_required):
    code = issue_enrolment_code(oncologist, by=admin_user)
    client.force_login(nurse)

    r = client.post(SETUP, {"enrolment_code": code})

    assertContains(r, "This enrolment code is not valid", status_code=400)


def test_the_code_is_kept_only_as_a_hash(nurse, admin_user):
    code = issue_enrolment_code(nurse, by=admin_user)

    stored = MfaEnrolment.objects.get()

    assert code.replace("-", "") not in stored.digest
    assert len(stored.digest) == 64


def test_without_the_setting_a_password_enrols_as_before(client, nurse, settings):
    settings.CTCTRACK_MFA_ENROLMENT_REQUIRED = False
    client.force_login(nurse)

    assertContains(client.get(SETUP), "otpauth://totp/")
