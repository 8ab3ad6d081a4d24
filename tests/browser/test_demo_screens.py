"""A nurse's morning on the demo cohort: the worklist's states and the results to review.

Seeds the demo (`manage.py seed_demo`) and takes the screenshots docs/screenshots/demo-*.png
at a desktop (1366 px) and a ward tablet's (768 px) width. (test_journeys.py takes those
of a small clinic built for each state.)
"""

from __future__ import annotations

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
    """The first row's cells that end beyond the window: seen only by scrolling sideways."""
    first = page.locator("table.worklist tbody tr").first
    out = []
    for label in ("Flags", "Acknowledgement"):
        box = first.locator(f"td[data-label='{label}']").bounding_box()
        if box is None or box["x"] + box["width"] > width:
            out.append(label)
    return out


@pytest.mark.parametrize("label", WIDTHS)
def test_the_worklist_shows_a_draw_due_a_result_pending_and_an_acknowledged_row(
    page: Page, live_server, demo, label, screenshot_dir
):
    page.set_viewport_size({"width": WIDTHS[label], "height": 900})
    sign_in(page, live_server.url, "nurse")
    rows = page.locator("table.worklist tbody tr")

    expect(rows.filter(has=page.locator(".state-draw_due")).first).to_contain_text("Draw due")
    pending = page.locator(f"tr[data-patient='{demo[Event.PENDING]}']")
    expect(pending).to_contain_text("Result pending since")
    expect(pending.locator("td[data-label='Latest count']")).to_contain_text("Pending")
    rejected = page.locator(f"tr[data-patient='{demo[Event.REJECTED]}']")
    expect(rejected.locator("td[data-label='Latest count']")).to_contain_text("Rejected")
    acknowledged = page.locator(f"tr[data-patient='{demo[Event.ACKNOWLEDGED]}']")
    expect(acknowledged).to_contain_text("Acknowledged by nurse")
    expect(acknowledged).to_contain_text("Oncologist informed; CT brought forward")
    expect(acknowledged.get_by_role("button", name="Acknowledge")).to_have_count(0)
    delayed = page.locator(f"tr[data-patient='{demo[Event.DELAYED]}']")
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
    escalated = page.locator(f"tr[data-patient='{demo[Event.ESCALATED]}']")
    expect(escalated).to_contain_text("escalated")
    expect(escalated).to_contain_text("HIGH")
    expect(page.locator(f"tr[data-patient='{demo[Event.NO_CYCLE]}']")).to_contain_text("HIGH")
    outside = page.locator(f"tr[data-patient='{demo[Event.HIGH_OUTSIDE_WINDOW]}']")
    expect(outside).to_contain_text("HIGH")  # drawn mid-cycle: no cycle shows it
    assert _columns_out_of_view(page, WIDTHS[label]) == []
    settle(page)
    page.screenshot(
        path=screenshot_dir / f"demo-results-to-review{_suffix(label)}.png", full_page=True
    )
