"""The CSV preview in a real browser: same-day warnings before the Import button, WCAG clean."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from patients.models import CTCDraw

from .journey import settle, sign_in
from .test_accessibility import AXE, audit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def axe() -> str:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `make browser-tools` (needs npm)")
    return AXE.read_text()


def test_a_same_day_warning_is_read_before_the_import_button(
    page: Page,
    live_server,
    clinic,
    axe,
    tmp_path,
):
    draw = CTCDraw.objects.get(patient__mrn="BT-001")  # drawn at 09:00 clinic time
    day = timezone.localtime(draw.drawn_at).date()
    later = datetime.combine(day, time(15, 30)).strftime("%Y-%m-%d %H:%M")
    path = tmp_path / "same-day.csv"
    path.write_bytes(
        b"mrn,drawn_at,status,ctc_count,accession\r\n"
        + f"BT-001,{later},resulted,4,SD-1\r\n".encode()
    )
    assert day < timezone.localdate() - timedelta(days=1)  # in the past, as a file would be
    sign_in(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/imports/csv/")

    page.get_by_label("CSV file").set_input_files(path)
    page.get_by_role("button", name="Check the file").click()
    settle(page)

    warnings = page.get_by_role("region", name="Check before importing")
    expect(warnings).to_contain_text("BT-001 already has a draw that day")
    button = page.get_by_role("button", name="Import 1 draw")
    assert warnings.bounding_box()["y"] < button.bounding_box()["y"]
    assert audit(page, axe) == []
    button.click()
    settle(page)
    assert CTCDraw.objects.filter(patient__mrn="BT-001").count() == 2
