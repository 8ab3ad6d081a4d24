"""A cycle is ranked from its window's tubes alone, with the same answer as from them all.

`rules.assess_cycle` reads only the tubes in the cycle's pre-cycle window, so the
rank refresh hands it those (`assessment.ranks.TubesByDay`, found by bisection)
instead of every tube of the patient, three times per cycle. The window's edges
are inclusive days: a tube on the day it opens and one on day 1 count, the days
either side do not.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.conf import settings

from patients import assessment, rules
from patients.assessment.loader import cycle_in
from patients.assessment.ranks import TubesByDay, cycle_ranks
from tests import builders

pytestmark = pytest.mark.django_db

WINDOW = settings.CTC_PRE_CYCLE_WINDOW_DAYS


def test_the_window_s_tubes_alone_rank_every_cycle_as_all_the_tubes_do(oncologist, patient):
    line = builders.therapy_line(patient, oncologist, start_date=date(2026, 1, 5))
    cycles = builders.cycles(line, oncologist, 4)
    # Around each window: the day before it opens, the day it opens, day 1, the day after.
    counts = iter([0, 2, 9, 30, 1, 4, 12, 3, 0, 7, 20, 5, 2, 8, 1, 40])
    for cycle in cycles:
        opens, day_1 = rules.pre_cycle_window(cycle_in(cycle), WINDOW)
        for day in (opens - timedelta(days=1), opens, day_1, day_1 + timedelta(days=1)):
            builders.draw(
                patient, oncologist, drawn_at=builders.local_at(day), ctc_count=next(counts)
            )
    series = assessment.series_for(patient)
    tubes = TubesByDay(series.assessments)

    for cycle in series.cycles:
        found = cycle_in(cycle)
        opens, day_1 = rules.pre_cycle_window(found, WINDOW)
        assert [a.draw.drawn_on for a in tubes.between(opens, day_1)] == [opens, day_1]
        assert cycle_ranks(found, tubes, series.covers, WINDOW) == cycle_ranks(
            found, series.assessments, series.covers, WINDOW
        )
