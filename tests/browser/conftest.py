"""Browser tests drive Debian's Chromium through pytest-playwright.

They are skipped, with a message saying why, on a machine without Chromium
(`make test` still passes there); `.ci/run` installs Chromium so CI runs them.
Screenshots go to $CTCTRACK_SCREENSHOTS (`make screenshots` points it at
docs/screenshots/), or to pytest's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# live_server runs Django in a thread while Playwright's sync API runs an event
# loop in this one; Django refuses ORM calls from a thread with a running loop
# unless told this is deliberate.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
SKIP_REASON = "Chromium is not installed (Debian: apt-get install chromium); browser tests skipped"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_CHROMIUM:
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}, "locale": "en-GB"}


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("CTCTRACK_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target
