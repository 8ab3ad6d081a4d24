"""Browser tests drive Debian's Chromium through pytest-playwright.

They are skipped, with a message saying why, on a machine without Chromium
(`make test` still passes there); `.ci/run` installs Chromium so CI runs them.
Screenshots go to $CTCTRACK_SCREENSHOTS (`make screenshots` points it at
docs/screenshots/), or to pytest's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from patients.roles import NURSE, ONCOLOGIST
from tests import builders

from .journey import PASSWORD

# live_server runs Django in a thread while Playwright's sync API runs an event
# loop in this one; Django refuses ORM calls from a thread with a running loop
# unless told this is deliberate.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _one_request_at_a_time_on_in_memory_sqlite() -> None:
    """On SQLite, live_server hands the test's one in-memory connection to the server.

    Django's threaded test server would then run a page and its chart on that one
    connection at once, their transactions interleaved ("table is locked", a 500
    that no deployment sees: a file database has a connection per thread). A
    server without threads answers them in turn, with `Connection: close`.
    """
    from django.conf import settings
    from django.core.servers.basehttp import WSGIServer
    from django.test.testcases import LiveServerThread

    class OneAtATime(WSGIServer):
        # The server thread itself runs every request, on the connections
        # LiveServerThread.run() has already put in place.
        def __init__(self, *args: object, connections_override: object = None, **kwargs: object):
            super().__init__(*args, **kwargs)

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        LiveServerThread.server_class = OneAtATime


_one_request_at_a_time_on_in_memory_sqlite()

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


@pytest.fixture
def clinic() -> dict:
    """Two clinicians and two patients due for a cycle in the coming days."""
    oncologist = builders.user_with_role(ONCOLOGIST, username="olivia", password=PASSWORD)
    builders.user_with_role(NURSE, username="nina", password=PASSWORD)
    today = timezone.localdate()
    for mrn, family, count, day1 in [("BT-001", "Brown", 2, 3), ("BT-002", "Adams", 1, 1)]:
        patient = builders.patient(
            oncologist,
            mrn=mrn,
            given_name="Pat",
            family_name=family,
            birth_date=today.replace(year=today.year - 60),
            oncologist=oncologist,
        )
        start = today - timedelta(days=42 - day1)
        line = builders.therapy_line(patient, oncologist, start_date=start)
        builders.cycles(line, oncologist, 2, status="given")  # each on its day 1
        builders.cycle(line, oncologist, number=3, scheduled_date=today + timedelta(days=day1))
        drawn = datetime.combine(
            start + timedelta(days=17), time(9), tzinfo=timezone.get_current_timezone()
        )
        builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=count)
    return {"today": today}
