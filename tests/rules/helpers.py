"""Small builders for the rules' inputs, shared by the tests in tests/rules.

The rules take frozen dataclasses, not database rows, so these build those
directly: a tube on a local date (drawn at 09:00 UTC unless told), a therapy
line, a cycle. Ids come from one counter, so tubes made later sort later.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from patients.rules import (
    CycleAssessment,
    CycleIn,
    DrawAssessment,
    DrawIn,
    Flag,
    LineIn,
    SampleAssessment,
    Settings,
    assess_draws,
    cutoff_for,
)

CUTOFFS = {"breast": 5, "prostate": 5, "colorectal": 3}
# A Thursday (2026-12-03), as in the specification's draw-due example.
DAY_ONE = date(2026, 12, 3)
DEFAULTS = Settings()

_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


def tube(
    on: date,
    count: int | None = None,
    *,
    status: str = "resulted",
    volume: str = "7.5",
    hour: int = 9,
    more_than: bool = False,
    tube_id: int | None = None,
) -> DrawIn:
    """One tube drawn on local date `on`; `more_than` makes the count a lower bound."""
    return DrawIn(
        id=next_id() if tube_id is None else tube_id,
        drawn_at=datetime(on.year, on.month, on.day, hour, tzinfo=UTC),
        drawn_on=on,
        blood_volume_ml=Decimal(volume),
        status=status,
        ctc_count=count,
        count_qualifier=">" if more_than else "",
    )


def series(*counts: int | str, start: date = date(2026, 1, 5), every: int = 21) -> list[DrawIn]:
    """One 7.5 mL tube every `every` days; a string is a tube with that (non-resulted) status."""
    return [
        tube(start + timedelta(days=every * i), None, status=c)
        if isinstance(c, str)
        else tube(start + timedelta(days=every * i), c)
        for i, c in enumerate(counts)
    ]


def assess(
    tubes: Sequence[DrawIn],
    lines: Sequence[LineIn] = (),
    cycles: Sequence[CycleIn] = (),
    *,
    cancer_type: str = "breast",
    settings: Settings = DEFAULTS,
) -> list[DrawAssessment]:
    return assess_draws(
        tubes,
        lines,
        cycles,
        cancer_type=cancer_type,
        cutoff=cutoff_for(cancer_type, CUTOFFS),
        settings=settings,
    )


def codes(item: DrawAssessment | SampleAssessment | CycleAssessment) -> list[str]:
    return [flag.code for flag in item.flags]


def flag(item: DrawAssessment | SampleAssessment | CycleAssessment, code: str) -> Flag:
    (found,) = [f for f in item.flags if f.code == code]
    return found


def line(
    line_id: int, start: date, *, number: int | None = None, doxorubicin: bool = False
) -> LineIn:
    return LineIn(line_id, number or line_id, start, doxorubicin, "AC" if doxorubicin else "FOLFOX")


def cycle(
    day_1: date,
    *,
    status: str = "planned",
    given_on: date | None = None,
    first_planned: date | None = None,
    line_id: int = 1,
    number: int = 2,
) -> CycleIn:
    return CycleIn(
        id=next_id(),
        line_id=line_id,
        number=number,
        scheduled_date=day_1,
        given_date=given_on,
        status=status,
        first_scheduled_date=first_planned,
    )
