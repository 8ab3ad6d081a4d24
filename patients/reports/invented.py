"""Invented series for the chart and report samples and their tests.

The rules' inputs of an invented patient (tubes, lines, cycles) with ids from one
counter, as the database would give them, and the chart's data assessed from them as
the chart views assess a patient's. Fixed dates, no clock, no random numbers, no
Django: `scripts/chart_samples.py` draws the same bytes from the same series.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from patients import rules
from patients.reports.chart_data import ChartData, ImagingPoint

# The settings' cut-offs (`CTC_CUTOFFS` in ctctrack/settings.py), without importing
# Django; a test holds them equal.
CUTOFFS = {"breast": 5, "prostate": 5, "colorectal": 3}


class InventedSeries:
    """Tubes, lines and cycles of invented patients, numbered from one counter."""

    def __init__(self, tz: tzinfo = UTC) -> None:
        self._ids = itertools.count(1)
        self.tz = tz

    def draw(
        self,
        on: date,
        count: int | None = None,
        *,
        status: str = "resulted",
        volume: str = "7.5",
        more_than: bool = False,
        at: time = time(9, 30),
    ) -> rules.DrawIn:
        """A tube drawn on `on` at `at`; `more_than`: the count is a lower bound (">1000")."""
        return rules.DrawIn(
            id=next(self._ids),
            drawn_at=datetime.combine(on, at, tzinfo=self.tz),
            drawn_on=on,
            blood_volume_ml=Decimal(volume),
            status=status,
            ctc_count=count if status == "resulted" else None,
            count_qualifier=">" if more_than else "",
        )

    def line(
        self, number: int, start: date, regimen: str, *, doxorubicin: bool = False
    ) -> rules.LineIn:
        return rules.LineIn(
            id=next(self._ids),
            line_number=number,
            start_date=start,
            contains_doxorubicin=doxorubicin,
            regimen=regimen,
        )

    def cycles(
        self, therapy: rules.LineIn, count: int, *, every: int, today: date
    ) -> list[rules.CycleIn]:
        """`count` cycles every `every` days from the line's start: given up to today,
        then planned."""
        found = []
        for number in range(1, count + 1):
            day = therapy.start_date + timedelta(days=every * (number - 1))
            given = day <= today
            found.append(
                rules.CycleIn(
                    id=next(self._ids),
                    line_id=therapy.id,
                    number=number,
                    scheduled_date=day,
                    given_date=day if given else None,
                    status="given" if given else "planned",
                )
            )
        return found


def chart_data(
    cancer_type: str,
    draws: Sequence[rules.DrawIn],
    *,
    today: date,
    lines: Sequence[rules.LineIn] = (),
    cycles: Sequence[rules.CycleIn] = (),
    imaging: Sequence[ImagingPoint] = (),
) -> ChartData:
    """The chart's data of these tubes, assessed by the rules at the settings' cut-off."""
    cutoff = rules.cutoff_for(cancer_type, CUTOFFS)
    assessments = rules.assess_draws(draws, lines, cycles, cancer_type=cancer_type, cutoff=cutoff)
    return ChartData(
        cancer_type=cancer_type,
        cutoff=cutoff,
        assessments=assessments,
        lines=lines,
        cycles=cycles,
        imaging=imaging,
        today=today,
    )
