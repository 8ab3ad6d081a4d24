"""/staff/replicate-variation/: the replicate cv from the clinic's duplicate tubes, for staff."""

from __future__ import annotations

import pytest
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients import replicates
from patients.models import AccessEvent
from tests import builders
from tests.records.test_replicate_tubes import duplicates

pytestmark = pytest.mark.django_db

URL = "/staff/replicate-variation/"
# 10 x (10, 20) and 10 x (5, 5): cv^2 = 600 / 4500 = 2/15, cv 0.37.
TWENTY_PAIRS = [(10, 20)] * 10 + [(5, 5)] * 10


@pytest.fixture
def twenty_pairs(oncologist):
    duplicates(builders.patient(oncologist), oncologist, TWENTY_PAIRS)


def test_it_redirects_anonymous_users_to_login(client):
    assertRedirects(client.get(URL), f"/accounts/login/?next={URL}", fetch_redirect_response=False)


@pytest.mark.parametrize("who", ["nurse", "oncologist", "outsider"])
def test_it_refuses_non_staff_and_records_the_refusal_only(client, request, who, twenty_pairs):
    user = request.getfixturevalue(who)
    client.force_login(user)

    r = client.get(URL)

    assert r.status_code == 403
    assert not AccessEvent.objects.filter(action="replicate_variation").exists()
    refusal = AccessEvent.objects.get(action="permission_denied")
    assert (refusal.user, refusal.target) == (user, f"GET {URL}")


def test_it_shows_staff_the_pairs_the_cv_its_interval_and_the_setting(
    client, admin_user, twenty_pairs
):
    expected = replicates.estimate_cv(TWENTY_PAIRS)
    client.force_login(admin_user)

    r = client.get(URL)

    assert r.status_code == 200
    assertContains(r, "20 duplicate pairs; replicate cv 0.37 (95% interval")
    assertContains(r, "<dt>Duplicate pairs</dt><dd>20</dd>", html=True)
    assertContains(r, "<dt>Replicate cv</dt><dd>0.37</dd>", html=True)
    interval = f"{expected.low:.2f} to {expected.high:.2f}"
    assertContains(r, f"<dt>95% bootstrap interval</dt><dd>{interval}</dd>", html=True)
    assertContains(r, "<dt><code>CTC_EXTRA_POISSON_CV</code> now</dt><dd>0.0</dd>", html=True)


def test_it_shows_the_setting_as_it_stands(client, admin_user, settings):
    settings.CTC_EXTRA_POISSON_CV = 0.25
    client.force_login(admin_user)

    r = client.get(URL)

    assertContains(r, "<dt><code>CTC_EXTRA_POISSON_CV</code> now</dt><dd>0.25</dd>", html=True)


def test_it_says_too_few_pairs(client, admin_user, oncologist):
    duplicates(builders.patient(oncologist), oncologist, [(4, 6)] * 19)
    client.force_login(admin_user)

    r = client.get(URL)

    assertContains(r, "Too few pairs (19; at least 20 are needed)")
    assertContains(r, "<dt>Replicate cv</dt><dd>no estimate</dd>", html=True)


def test_it_records_the_read_in_the_access_log(client, admin_user, twenty_pairs):
    client.force_login(admin_user)

    client.get(URL)

    event = AccessEvent.objects.get(action="replicate_variation")
    assert (event.user, event.patient, event.target, event.outcome) == (
        admin_user,
        None,
        "replicate variation: 20 duplicate pairs",
        "success",
    )


def test_staff_find_it_in_the_header(client, admin_user):
    client.force_login(admin_user)

    r = client.get("/patients/")

    assertContains(r, f'<a href="{URL}">Replicate variation</a>', html=True)


def test_others_do_not_see_it_in_the_header(client, nurse):
    client.force_login(nurse)

    r = client.get("/patients/")

    assert r.status_code == 200
    assertNotContains(r, "Replicate variation")
