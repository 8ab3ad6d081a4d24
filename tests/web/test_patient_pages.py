"""The patient list and the patient page."""

from __future__ import annotations

import re
from datetime import date

import pytest
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients import services
from tests import builders

pytestmark = pytest.mark.django_db


def _register(by, i: int):
    """The i-th of a numbered list: MRN L-000, Family000 and so on, as the searches look for."""
    return builders.patient(
        by,
        mrn=f"L-{i:03d}",
        given_name=f"Given{i}",
        family_name=f"Family{i:03d}",
        cancer_type="prostate",
    )


@pytest.mark.parametrize("url", ["/patients/", "/patients/{pk}/"])
def test_anonymous_users_are_sent_to_login_and_outsiders_get_403(client, outsider, patient, url):
    url = url.format(pk=patient.pk)
    assertRedirects(client.get(url), f"/accounts/login/?next={url}", fetch_redirect_response=False)

    client.force_login(outsider)
    assert client.get(url).status_code == 403


def test_the_list_shows_the_latest_category_and_the_next_cycle(
    client, nurse, oncologist, patient, line
):
    builders.cycle(line, oncologist, number=1, scheduled_date=date(2099, 1, 5))
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=7)
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 9), status="failed")
    client.force_login(nurse)

    r = client.get("/patients/")

    assertContains(r, "Doe, Jane")
    assertContains(r, "7 CTC/7.5 mL")
    assertContains(r, "category-unfavourable")
    assertContains(r, "C1 on Mon 5 Jan 2099")


def test_the_list_searches_by_name_or_mrn_and_paginates(client, nurse, oncologist):
    for i in range(30):
        _register(oncologist, i)
    client.force_login(nurse)

    first = client.get("/patients/")
    second = client.get("/patients/", {"page": 2})
    found = client.post("/patients/", {"q": "L-017"}, follow=True)

    assertContains(first, "Page 1 of 2")
    assertContains(second, "Family029")
    assertContains(found, "Family017")
    assertNotContains(found, "Family016")


def test_a_search_never_puts_the_name_in_a_url(client, nurse, oncologist):
    for i in range(30):
        _register(oncologist, i)
    client.force_login(nurse)

    searched = client.post("/patients/", {"q": "Family01"})
    assert searched.status_code == 302 and searched["Location"] == "/patients/"

    found = client.get("/patients/")
    assertContains(found, "10 patients matching “Family01”")
    assertContains(found, "Family019")
    assertNotContains(found, "Family020")
    for link in re.findall(r'href="([^"]*)"', found.content.decode()):
        assert "Family" not in link and "q=" not in link, link
    # The search stays while the nurse pages through it, until they clear it.
    assertContains(client.get("/patients/", {"page": 1}), "matching “Family01”")
    client.post("/patients/", {"q": ""})
    assertContains(client.get("/patients/"), "30 patients.")


def test_the_list_runs_the_same_queries_for_few_or_many_patients(
    client, nurse, oncologist, count_queries
):
    for i in range(3):
        builders.draw(_register(oncologist, i), oncologist, drawn_at=date(2026, 1, 2), ctc_count=i)
    client.force_login(nurse)
    client.get("/patients/")
    few = count_queries(lambda: client.get("/patients/"))
    for i in range(3, 25):
        builders.draw(_register(oncologist, i), oncologist, drawn_at=date(2026, 1, 2), ctc_count=i)

    many = count_queries(lambda: client.get("/patients/"))

    assert few == many


def test_the_patient_page_shows_every_draw_with_values_interval_category_and_flags(
    client, nurse, oncologist, patient, line
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 23), ctc_count=9, accession="ACC-9")
    builders.draw(
        patient, oncologist, drawn_at=date(2026, 2, 13), status="rejected", comment="Haemolysed"
    )
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/")

    assertContains(r, "MRN MRN0001")
    assertContains(r, "unfavourable at 5 or more CTC per 7.5 mL")
    assertContains(r, "9 in 7.5 mL")
    assertContains(r, "4.12–17.08")
    assertContains(r, "Converted to unfavourable")
    assertContains(r, "Haemolysed")
    assertContains(r, "Not evaluable (rejected")
    assertContains(r, f'src="/patients/{patient.pk}/chart.svg"')
    assertContains(r, "Line 1: Paclitaxel")


def test_nurses_see_no_edit_actions_and_oncologists_do(client, nurse, oncologist, patient, draw):
    client.force_login(nurse)
    as_nurse = client.get(f"/patients/{patient.pk}/")
    client.force_login(oncologist)
    as_oncologist = client.get(f"/patients/{patient.pk}/")

    for link in ["New draw", "Edit patient", "New therapy line", f"/draws/{draw.pk}/edit/"]:
        assertNotContains(as_nurse, link)
        assertContains(as_oncologist, link)


def test_a_draw_entered_in_error_stays_visible_but_struck(client, nurse, oncologist, draw):
    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong patient"
    )
    client.force_login(nurse)

    r = client.get(f"/patients/{draw.patient_id}/")

    assertContains(r, 'class="voided"')
    assertContains(r, "Wrong patient")


def test_the_patient_page_runs_the_same_queries_for_few_or_many_draws(
    client, nurse, oncologist, patient, line, count_queries
):
    for day in range(1, 3):
        builders.draw(patient, oncologist, drawn_at=date(2026, 1, day), ctc_count=day)
    client.force_login(nurse)
    client.get(f"/patients/{patient.pk}/")
    few = count_queries(lambda: client.get(f"/patients/{patient.pk}/"))
    for day in range(3, 28):
        builders.draw(patient, oncologist, drawn_at=date(2026, 1, day), ctc_count=day % 6)
        builders.cycle(line, oncologist, number=day, scheduled_date=date(2026, 2, day))

    many = count_queries(lambda: client.get(f"/patients/{patient.pk}/"))

    assert few == many


def test_an_unknown_patient_is_404(client, nurse):
    client.force_login(nurse)

    assert client.get("/patients/999999/").status_code == 404
