"""A day's work in a real browser: an oncologist enters a count, a nurse acknowledges it."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from patients import services
from patients.roles import NURSE, ONCOLOGIST

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-42"


@pytest.fixture
def clinic(django_user_model):
    """Two clinicians and two patients due for a cycle in the coming days."""
    oncologist = django_user_model.objects.create_user("olivia", password=PASSWORD)
    oncologist.groups.add(Group.objects.get(name=ONCOLOGIST))
    nurse = django_user_model.objects.create_user("nina", password=PASSWORD)
    nurse.groups.add(Group.objects.get(name=NURSE))
    today = timezone.localdate()
    for mrn, family, count, day1 in [("BT-001", "Brown", 2, 3), ("BT-002", "Adams", 1, 1)]:
        patient = services.register_patient(
            by=oncologist,
            mrn=mrn,
            given_name="Pat",
            family_name=family,
            birth_date=today.replace(year=today.year - 60),
            sex="female",
            cancer_type="breast",
            oncologist=oncologist,
        )
        line = services.add_therapy_line(
            patient=patient,
            by=oncologist,
            regimen="Paclitaxel",
            start_date=today - timedelta(days=42 - day1),
            cycle_length_days=21,
        )
        for number in (1, 2):
            given = line.start_date + timedelta(days=21 * (number - 1))
            services.plan_cycle(
                line=line,
                by=oncologist,
                number=number,
                scheduled_date=given,
                status="given",
                given_date=given,
            )
        services.plan_cycle(
            line=line, by=oncologist, number=3, scheduled_date=today + timedelta(days=day1)
        )
        drawn = datetime.combine(
            line.start_date + timedelta(days=17), time(9), tzinfo=timezone.get_current_timezone()
        )
        services.record_draw(patient=patient, by=oncologist, drawn_at=drawn, ctc_count=count)
    return {"today": today}


def _sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Pre-cycle worklist")).to_be_visible()


def _settle(page: Page) -> None:
    """Let the page's own requests (the chart) finish before the test's database goes away."""
    page.wait_for_load_state("networkidle")


def _sign_out(page: Page) -> None:
    _settle(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_oncologist_enters_a_converting_count_and_a_nurse_acknowledges_it(
    page: Page, live_server, clinic, screenshot_dir
):
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.screenshot(path=screenshot_dir / "login.png")

    # The oncologist records today's count for Brown: 2 -> 12, a conversion.
    _sign_in(page, base, "olivia")
    page.get_by_role("link", name="Patients").click()
    page.screenshot(path=screenshot_dir / "patient-list.png", full_page=True)
    page.get_by_role("link", name="Brown, Pat").click()
    page.get_by_role("link", name="New draw").click()
    page.get_by_label("CTC count").fill("-3")
    page.get_by_label("Drawn at").fill(f"{clinic['today']:%Y-%m-%d}T08:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    page.screenshot(path=screenshot_dir / "draw-form-errors.png", full_page=True)
    page.get_by_label("CTC count").fill("12")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Draw saved. Flags:")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("Converted to unfavourable")
    _settle(page)
    page.screenshot(path=screenshot_dir / "patient-page.png", full_page=True)
    _sign_out(page)

    # The nurse finds Brown at the top of the worklist and acknowledges the flags.
    _sign_in(page, base, "nina")
    first_row = page.locator("table.worklist tbody tr").first
    expect(first_row).to_contain_text("BT-001")
    expect(first_row).to_contain_text("HIGH")
    page.screenshot(path=screenshot_dir / "worklist.png", full_page=True)
    first_row.get_by_label("Note").fill("Oncologist informed; CT brought forward")
    first_row.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Acknowledged cycle 3 for Pat Brown")).to_be_visible()
    first_row = page.locator("table.worklist tbody tr").first
    expect(first_row).to_contain_text("Oncologist informed; CT brought forward")
    expect(first_row).to_contain_text("Converted to unfavourable")  # the flag stays
    page.screenshot(path=screenshot_dir / "worklist-acknowledged.png", full_page=True)
    _sign_out(page)


def test_a_nurse_sees_no_edit_actions_on_the_patient_page(page: Page, live_server, clinic):
    _sign_in(page, live_server.url, "nina")

    page.get_by_role("link", name="Brown, Pat").first.click()

    expect(page.get_by_role("heading", name="CTC draws (1)")).to_be_visible()
    expect(page.get_by_role("link", name="New draw")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit patient")).to_have_count(0)
    _settle(page)
