"""A day's work in a real browser: an oncologist enters a count, a nurse acknowledges it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from patients.models import Patient
from tests import builders
from tests.web import worklist_states

from .journey import settle, sign_in, sign_out

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_oncologist_enters_a_converting_count_and_a_nurse_acknowledges_it(
    page: Page, live_server, clinic, screenshot_dir
):
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.screenshot(path=screenshot_dir / "login.png")

    # The oncologist records today's count for Brown: 2 -> 12, a conversion.
    sign_in(page, base, "olivia")
    page.get_by_role("link", name="Patients").click()
    page.screenshot(path=screenshot_dir / "patient-list.png", full_page=True)
    page.get_by_role("link", name="Brown, Pat").click()
    page.get_by_role("link", name="New draw").click()
    page.get_by_label("CTC count").fill("-3")
    # Midnight of today: never in the future, whatever the time the suite runs.
    page.get_by_label("Drawn at").fill(f"{clinic['today']:%Y-%m-%d}T00:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    page.screenshot(path=screenshot_dir / "draw-form-errors.png", full_page=True)
    page.get_by_label("CTC count").fill("12")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Draw saved. Flags:")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("Converted to unfavourable")
    settle(page)
    page.screenshot(path=screenshot_dir / "patient-page.png", full_page=True)
    sign_out(page)

    # The nurse finds Brown at the top of the worklist and acknowledges the flags.
    sign_in(page, base, "nina")
    page.get_by_role("link", name="By urgency").click()
    first_row = page.locator("ol.worklist > li").first
    expect(first_row).to_contain_text("BT-001")
    expect(first_row.locator(".chip-high")).to_contain_text("converted")
    page.screenshot(path=screenshot_dir / "worklist.png", full_page=True)
    first_row.locator("summary").click()
    first_row.get_by_label("Note").fill("Oncologist informed; CT brought forward")
    first_row.locator(".ack-form").get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".messages")).to_contain_text(
        "Acknowledged cycle 3 of Paclitaxel for Brown, Pat (MRN BT-001)."
    )
    row = page.locator("li.just-done")  # highlighted, wherever the order now puts it
    expect(row).to_contain_text("BT-001")
    expect(row.locator(".ack-line")).to_contain_text("Oncologist informed; CT brought forward")
    expect(row).to_contain_text("Converted to unfavourable")  # the flag stays
    page.screenshot(path=screenshot_dir / "worklist-acknowledged.png", full_page=True)
    sign_out(page)


def test_a_nurse_sees_no_edit_actions_on_the_patient_page(page: Page, live_server, clinic):
    sign_in(page, live_server.url, "nina")

    page.get_by_role("link", name="Brown, Pat").first.click()

    expect(page.get_by_role("heading", name="CTC draws (1)")).to_be_visible()
    expect(page.get_by_role("link", name="New draw")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit patient")).to_have_count(0)
    settle(page)


def test_a_nurse_clears_the_results_to_review_from_the_header(
    page: Page, live_server, clinic, screenshot_dir
):
    olivia = User.objects.get(username="olivia")
    brown = Patient.objects.get(mrn="BT-001")
    # A high result drawn weeks before any window, and one for a patient with no cycle.
    builders.draw(brown, olivia, drawn_at=timezone.now() - timedelta(days=12), ctc_count=14)
    unplanned = builders.patient(olivia, mrn="BT-003", given_name="Sam", family_name="Clark")
    builders.draw(unplanned, olivia, drawn_at=timezone.now() - timedelta(days=2), ctc_count=9)
    sign_in(page, live_server.url, "nina")

    results = page.get_by_role("link", name=re.compile("^Results to review"))
    expect(results.locator(".count")).to_have_text("2")
    results.click()
    rows = page.locator("ol.results > li")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("BT-001")  # high before review
    expect(rows.first).to_have_class(re.compile("severity-high"))
    settle(page)
    page.screenshot(path=screenshot_dir / "results-to-review.png", full_page=True)

    rows.first.locator("summary").click()
    rows.first.get_by_label("Note").fill("Oncologist informed; CT brought forward")
    rows.first.locator(".ack-form").get_by_role("button", name="Acknowledge").click()

    expect(page.get_by_text("Acknowledged the result drawn")).to_be_visible()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("BT-003")
    expect(results.locator(".count")).to_have_text("1")
    sign_out(page)


def test_the_worklist_says_each_cycles_state(page: Page, live_server, clinic, screenshot_dir):
    worklist_states.build(
        User.objects.get(username="olivia"), User.objects.get(username="nina"), clinic["today"]
    )
    sign_in(page, live_server.url, "nina")
    page.goto(f"{live_server.url}/?days={worklist_states.DAYS}")
    settle(page)

    expect(page.locator(".state-draw_due").first).to_contain_text("Draw due")
    expect(page.locator(".state-not_yet_due")).to_contain_text("Nothing due yet")
    expect(page.locator(".state-result_pending")).to_contain_text("Result pending since")
    page.screenshot(path=screenshot_dir / "worklist-states.png", full_page=True)
    sign_out(page)
