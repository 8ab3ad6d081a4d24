"""A clinic with one upcoming cycle in each pre-cycle state and worklist rank (spec section 4).

Dates are relative to the clinic's today, so each cycle is in the phase its name
says whenever the suite runs; every draw is at least a day old. The worklist page,
the API and the browser tests read the same clinic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from patients import services
from patients.models import TreatmentCycle
from tests import builders

# How many days the worklist must span, from today, to show every cycle below.
DAYS = 14


@dataclass(frozen=True)
class Case:
    family: str
    day_1: int  # days from today
    tubes: tuple[tuple[int, int | str], ...]  # (days before today, a count or a status)
    acknowledged: bool = False


# In the worklist's order: unacknowledged high and review first (high, review; then by
# day 1), then the rest (high, review, info, draw due, nothing; then by day 1).
CASES = {
    "high": Case("Ahmed", 3, ((30, 1), (2, 12))),  # a clear conversion in the window
    "not_evaluable": Case("Ibsen", 4, ((1, "rejected"),)),  # draw due, a rejected tube
    "review": Case("Cole", 5, ((1, 9),)),  # unfavourable at baseline
    "acknowledged": Case("Baker", 1, ((30, 1), (2, 12)), acknowledged=True),
    "info": Case("Evans", 1, ((30, 12), (3, 2))),  # converted to favourable
    "draw_due": Case("Dunn", 6, ()),  # the window opened yesterday, nothing drawn yet
    "pending": Case("Hart", 2, ((1, "pending"),)),
    "nothing": Case("Ford", 4, ((2, 1),)),  # a favourable result, no flag
    "not_yet_due": Case("Gray", 12, ()),  # the window opens in five days
}
ORDER = list(CASES)


def at(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=timezone.get_current_timezone())


def build(by, acknowledger, today: date | None = None) -> dict[str, TreatmentCycle]:
    """Each case as a patient of `by` with cycle 2 of a line due on its day 1."""
    today = today or timezone.localdate()
    cycles = {}
    for name, case in CASES.items():
        patient = builders.patient(by, family_name=case.family, oncologist=by)
        day_1 = today + timedelta(days=case.day_1)
        line = builders.therapy_line(patient, by, start_date=day_1 - timedelta(days=21))
        cycle = builders.cycle(line, by, number=2, scheduled_date=day_1)
        for days_ago, result in case.tubes:
            drawn = at(today - timedelta(days=days_ago))
            if isinstance(result, int):
                builders.draw(patient, by, drawn_at=drawn, ctc_count=result)
            else:
                builders.draw(patient, by, drawn_at=drawn, status=result)
        if case.acknowledged:
            services.acknowledge_cycle(cycle=cycle, by=acknowledger, note="Oncologist informed")
        cycles[name] = cycle
    return cycles
