"""A nurse's morning on the demo cohort: the worklist's states and the results to review.

Seeds the demo (`manage.py seed_demo`) and takes the screenshots docs/screenshots/demo-*.png
at a desktop (1366 px) and a ward tablet's (768 px) width. (test_journeys.py takes those
of a small clinic built for each state.)
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect

from patients.demo import Event, plan_cohort

from .journey import PASSWORD, settle, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": 1366, "tablet": 768}


@pytest.fixture
def demo(monkeypatch) -> dict[Event, str]:
    """The demo cohort, its users signing in with the journeys' password: MRNs by event."""
    monkeypatch.setenv("CTCTRACK_DEMO_PASSWORD", PASSWORD)
    call_command("seed_demo", allow_without_debug=True, stdout=StringIO(), stderr=StringIO())
    return {plan.event: plan.mrn for plan in plan_cohort(timezone.localdate())}


def _suffix(label: str) -> str:
    return "" if label == "desktop" else f"-{label}"


def _columns_out_of_view(page: Page, width: int) -> list[str]:
    """The first row's reason and disclosure (the flags, the acknowledge form) when they
    end beyond the window: seen only by scrolling sideways."""
    first = page.locator("ol.rows > li").first
    out = []
    for part in (".c-reason", ".c-more summary"):
        box = first.locator(part).bounding_box()
        if box is None or box["x"] + box["width"] > width:
            out.append(part)
    return out


@pytest.mark.parametrize("label", WIDTHS)
def test_the_worklist_shows_a_draw_due_a_result_pending_and_an_acknowledged_row(
    page: Page, live_server, demo, label, screenshot_dir
):
    page.set_viewport_size({"width": WIDTHS[label], "height": 900})
    sign_in(page, live_server.url, "nurse")
    rows = page.locator("ol.worklist > li")

    expect(rows.filter(has=page.locator(".state-draw_due")).first).to_contain_text("Draw due")
    pending = page.locator(f"li[data-patient='{demo[Event.PENDING]}']")
    expect(pending).to_contain_text("Result pending since")
    expect(pending.locator(".c-latest")).to_contain_text("pending since")
    rejected = page.locator(f"li[data-patient='{demo[Event.REJECTED]}']")
    expect(rejected.locator(".c-latest")).to_contain_text("rejected")
    expect(rejected.locator(".c-latest")).to_contain_text("repeat needed")
    acknowledged = page.locator(f"li[data-patient='{demo[Event.ACKNOWLEDGED]}']")
    expect(acknowledged.locator(".ack-line")).to_contain_text("Acknowledged by Nina Novak")
    expect(acknowledged).to_contain_text("Oncologist informed; CT brought forward")
    expect(acknowledged.locator(".ack-form")).to_have_count(0)
    delayed = page.locator(f"li[data-patient='{demo[Event.DELAYED]}']")
    expect(delayed).to_contain_text("delayed")
    assert _columns_out_of_view(page, WIDTHS[label]) == []
    settle(page)
    page.screenshot(path=screenshot_dir / f"demo-worklist{_suffix(label)}.png", full_page=True)


@pytest.mark.parametrize("label", WIDTHS)
def test_results_to_review_list_the_escalated_result_and_the_patient_with_no_cycle(
    page: Page, live_server, demo, label, screenshot_dir
):
    page.set_viewport_size({"width": WIDTHS[label], "height": 900})
    sign_in(page, live_server.url, "nurse")

    page.get_by_role("link", name="Results to review").first.click()

    expect(page.get_by_role("heading", name="Results to review")).to_be_visible()
    escalated = page.locator(f"li[data-patient='{demo[Event.ESCALATED]}']")
    expect(escalated).to_contain_text("escalated")
    expect(escalated).to_have_class(re.compile("severity-high"))
    no_cycle = page.locator(f"li[data-patient='{demo[Event.NO_CYCLE]}']")
    expect(no_cycle).to_have_class(re.compile("severity-high"))
    outside = page.locator(f"li[data-patient='{demo[Event.HIGH_OUTSIDE_WINDOW]}']")
    expect(outside).to_have_class(re.compile("severity-high"))  # mid-cycle: no cycle shows it
    assert _columns_out_of_view(page, WIDTHS[label]) == []
    settle(page)
    page.screenshot(
        path=screenshot_dir / f"demo-results-to-review{_suffix(label)}.png", full_page=True
    )
