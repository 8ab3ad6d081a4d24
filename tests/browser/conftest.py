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
from django.contrib.auth.models import Group
from django.utils import timezone

from patients import services
from patients.roles import NURSE, ONCOLOGIST

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
