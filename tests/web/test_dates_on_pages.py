"""One format per kind of date on every page: a day "Thu 3 Dec 2026", a time "3 Dec 2026 08:30".

The template builtins `day` and `moment` write them as `patients.wording` does for the
PDF, the chart and the rules' messages; a template that spells its own human format
with Django's `date` filter would drift from them, so none may.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.utils import timezone

# What templates may still hand to Django's `date` filter: machine formats (ISO for
# `<time datetime>` and date inputs), the audit report's UTC timestamps, a month ("since
# Nov 2025") and the short "delayed from 30 Dec" beside a day 1 that carries the year.
MACHINE_OR_PARTIAL = {"c", "Y-m-d", "Y-m-d H:i:s", "M Y", "j M", "Y"}


def render(source: str, **values: object) -> str:
    return Template(source).render(Context(values))


def test_a_day_reads_with_its_weekday_and_a_time_without() -> None:
    assert render("{{ d|day }}", d=date(2026, 12, 3)) == "Thu 3 Dec 2026"
    assert (
        render("{{ t|moment }}", t=datetime(2026, 12, 3, 8, 30, tzinfo=UTC)) == "3 Dec 2026 08:30"
    )


def test_times_are_shown_in_the_clinics_zone() -> None:
    late = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)  # already 4 Dec in Sydney
    with timezone.override("Australia/Sydney"):
        assert render("{{ t|moment }}", t=late) == "4 Dec 2026 10:30"
        assert render("{{ t|day }}", t=late) == "Fri 4 Dec 2026"


def test_nothing_reads_as_nothing() -> None:
    assert render("{{ d|day|default:'—' }}", d=None) == "—"
    assert render("{{ t|moment }}", t=None) == ""


@pytest.mark.parametrize(
    "path", sorted(Path(settings.BASE_DIR, "templates").rglob("*.html")), ids=lambda p: p.name
)
def test_no_template_spells_its_own_human_date_format(path: Path) -> None:
    formats = re.findall(r"""\|date:["']([^"']*)["']""", path.read_text(encoding="utf-8"))
    assert [f for f in formats if f not in MACHINE_OR_PARTIAL] == [], (
        "use |day or |moment for a date people read"
    )
