"""The worklist, the results to review and the patient list on a desktop and a ward tablet.

At 1366, 1024 and 768 px, as an oncologist and as a nurse: no sideways scroll of the
page or of any box in it, every row's reason and its disclosure (the flags and the
acknowledge form) inside the window, and no WCAG 2.1 A/AA violation, with a row's
disclosure closed and open. After acknowledging, the message says what was done in
view at the top of the page and the row is highlighted.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.web import worklist_states

from .journey import settle, sign_in
from .test_accessibility import AXE, audit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = [1366, 1024, 768]
LISTS = {
    "worklist": f"/?days={worklist_states.DAYS}",
    "results": "/results/",
    "patients": "/patients/",
}


@pytest.fixture(scope="session")
def axe_js() -> str:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `make browser-tools` (needs npm)")
    return AXE.read_text()


@pytest.fixture
def ward(clinic) -> dict:
    """The browser clinic plus a cycle in every state of the worklist, by full names."""
    olivia, nina = User.objects.get(username="olivia"), User.objects.get(username="nina")
    for user, (first, last) in ((olivia, ("Olivia", "Okafor")), (nina, ("Nina", "Novak"))):
        user.first_name, user.last_name = first, last
        user.save(update_fields=["first_name", "last_name"])
    return worklist_states.build(olivia, nina, clinic["today"])


def _sideways(page: Page) -> list[str]:
    """What scrolls sideways: the page, or a box inside it (visually hidden text aside)."""
    return page.evaluate(
        """() => {
          const out = [];
          const root = document.documentElement;
          const over = root.scrollWidth - root.clientWidth;
          if (over > 0) out.push(`page by ${over} px`);
          for (const el of document.querySelectorAll('main *')) {
            if (el.clientWidth <= 2) continue;
            const x = getComputedStyle(el).overflowX;
            if ((x === 'auto' || x === 'scroll') && el.scrollWidth > el.clientWidth + 1)
              out.push(`${el.tagName}.${el.className} by ${el.scrollWidth - el.clientWidth} px`);
          }
          return out;
        }"""
    )


def _out_of_view(page: Page, width: int) -> list[str]:
    """Rows whose reason or disclosure ends beyond the window's right edge."""
    return page.evaluate(
        """(width) => [...document.querySelectorAll('ol.rows > li')].flatMap(li =>
            ['.c-reason', '.c-more > summary'].filter(part => {
              const box = li.querySelector(part).getBoundingClientRect();
              return box.right > width || box.left < 0;
            }).map(part => `${li.id} ${part}`))""",
        width,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_lists_need_no_sideways_scrolling_and_have_no_wcag_violations(
    page: Page, live_server, ward, width, axe_js
):
    page.set_viewport_size({"width": width, "height": 900})
    failures: dict[str, list[str]] = {}
    for username in ("olivia", "nina"):
        page.context.clear_cookies()
        sign_in(page, live_server.url, username)
        for name, path in LISTS.items():
            response = page.goto(live_server.url + path)
            settle(page)
            where = f"{name} as {username} at {width} px"
            assert response and response.ok, where
            found = _sideways(page) + _out_of_view(page, width) + audit(page, axe_js)
            if name != "patients":
                expect(page.locator("ol.rows > li").first).to_be_visible()
                page.locator("ol.rows > li .c-more > summary").first.click()  # open one row
                form = page.locator("ol.rows > li .c-more[open]").first
                expect(form.locator(".flags, .state, .muted").first).to_be_visible()
                found += _sideways(page) + _out_of_view(page, width) + audit(page, axe_js)
                button = form.locator(".ack-form button")
                if button.count():
                    box = button.bounding_box()
                    if box is None or box["x"] + box["width"] > width:
                        found.append("the acknowledge button is beyond the window")
            if found:
                failures[where] = found
    assert failures == {}


@pytest.mark.parametrize("width", [1366, 768])
def test_after_acknowledging_the_message_is_in_view_and_the_row_highlighted(
    page: Page, live_server, ward, width
):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server.url, "nina")
    page.goto(f"{live_server.url}/?days={worklist_states.DAYS}&view=urgency")
    row = page.locator(f"#cycle-{ward['review'].pk}")
    row.locator("summary").click()
    row.get_by_label("Note").fill("Oncologist informed")

    row.locator(".ack-form").get_by_role("button", name="Acknowledge").click()

    message = page.locator(".messages")
    expect(message).to_contain_text(re.compile(r"Acknowledged cycle 2 of Paclitaxel for Cole, "))
    assert "#" not in page.url  # no jump to an anchor past the message
    box = message.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900
    done = page.locator("li.just-done")
    expect(done).to_have_count(1)
    expect(done).to_have_id(f"cycle-{ward['review'].pk}")
    expect(done.locator(".ack-line")).to_contain_text("Acknowledged by Nina Novak")
    expect(done.locator(".ack-line")).to_contain_text("Oncologist informed")
    page.reload()
    expect(page.locator("li.just-done")).to_have_count(0)  # highlighted once
    settle(page)
