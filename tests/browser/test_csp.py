"""The Content-Security-Policy blocks nothing the app itself needs, in a real Chromium.

Chromium reports every blocked script, style or image on the console; a signed-in
walk through the main pages (and the pages of sign-in and two-factor set-up)
must produce none. The inline SVG sparklines, trend chart and QR code only use
presentation attributes, which the policy allows.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from playwright.sync_api import ConsoleMessage, Page, expect

from patients.models import Patient

from .journey import settle, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _collect_violations(page: Page) -> list[str]:
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            found.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: found.append(f"{page.url}: {error}"))
    return found


def test_no_page_breaks_the_content_security_policy(page: Page, live_server, clinic):
    base = live_server.url
    violations = _collect_violations(page)
    patient = Patient.objects.get(mrn="BT-001")

    sign_in(page, base, "olivia")  # the login page, then the worklist with its sparklines
    expect(page.locator(".spark svg").first).to_be_visible()
    settle(page)
    for path in [
        "/patients/",
        f"/patients/{patient.pk}/",
        f"/patients/{patient.pk}/draws/new/",
        "/accounts/mfa/setup/",
    ]:
        page.goto(f"{base}{path}")
        settle(page)

    assert violations == []


def test_the_stylesheet_applies_under_the_policy(page: Page, live_server, clinic):
    # A blocked stylesheet would leave the header unstyled (transparent background).
    sign_in(page, live_server.url, "nina")

    background = page.locator(".site-header").evaluate("el => getComputedStyle(el).backgroundColor")

    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    settle(page)


def test_an_inline_script_would_be_blocked(page: Page, live_server, clinic):
    # The policy is really enforced: a script injected into a page does not run.
    violations = _collect_violations(page)
    sign_in(page, live_server.url, "nina")
    settle(page)

    page.evaluate(
        """() => {
            const s = document.createElement('script');
            s.textContent = 'window.__ran = true';
            document.body.appendChild(s);
        }"""
    )

    assert page.evaluate("() => window.__ran === true") is False
    assert any("script-src" in v for v in violations)


@pytest.mark.parametrize("width", [1366, 1024, 768])
def test_the_inline_chart_is_drawn_in_colour_and_its_points_take_the_keyboard(
    page: Page, live_server, clinic, width: int
):
    # Charts are cached by patient id and data version, which a flushed test database
    # hands out again: another test's chart must not stand in for this one.
    cache.clear()
    base = live_server.url
    violations = _collect_violations(page)
    patient = Patient.objects.get(mrn="BT-001")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, base, "nina")

    page.goto(f"{base}/patients/{patient.pk}/")
    settle(page)
    point = page.locator("svg.trend-chart .ctc-point").first
    expect(point).to_be_visible()
    # From the last of the patient's actions, Tab reaches the chart's first point.
    page.locator("nav.actions a").last.focus()
    page.keyboard.press("Tab")

    assert page.evaluate("document.activeElement.getAttribute('class')") == "ctc-point"
    assert page.evaluate("document.activeElement.id") == "ctc-point-0"
    assert "CTC/7.5 mL" in (point.locator("title").text_content() or "")
    # Without its style attributes a shape would be filled black: the attributes apply.
    fill = point.locator("use").first.evaluate("el => getComputedStyle(el).fill")
    assert fill not in ("rgb(0, 0, 0)", "")
    assert violations == []
