"""Steps shared by the browser tests."""

from __future__ import annotations

from playwright.sync_api import Page, expect

PASSWORD = "correct-horse-42"


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Pre-cycle worklist")).to_be_visible()


def settle(page: Page) -> None:
    """Let the page's own requests (the chart) finish before the test's database goes away."""
    page.wait_for_load_state("networkidle")


def sign_out(page: Page) -> None:
    settle(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
