"""Generating a report PDF logs nothing at INFO from fontTools.

Matplotlib's PDF backend subsets each font with fontTools, which logs the glyphs it
kept at INFO: the characters of the patient's name, on every report. The settings
hold fontTools at WARNING.
"""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db


def _from_fonttools_below_warning(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in records
        if r.name.split(".")[0] == "fontTools" and r.levelno < logging.WARNING
    ]


def test_the_fonttools_logger_is_held_at_warning():
    assert logging.getLogger("fontTools.subset").getEffectiveLevel() == logging.WARNING


def test_a_report_pdf_logs_nothing_at_info_from_fonttools(client, nurse, patient, draw, caplog):
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/report.pdf")

    assert r.status_code == 200
    assert r.content.startswith(b"%PDF")
    assert _from_fonttools_below_warning(caplog.records) == []
