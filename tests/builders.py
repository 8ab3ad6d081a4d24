"""Builders for test data: users, patients, therapy lines, cycles and CTC draws.

Each builder makes a valid record through `patients.services`, as the pages and
the API do, so every row has its change history and the patient's review ranks
and data version move as they would in use. The acting user comes first, the
rest by keyword with defaults; pass a value explicitly whenever the test's
assertion depends on it. MRNs and usernames come from a counter, so a builder
can be called any number of times in one test.

A test of the database constraints themselves bypasses the services and uses
`Model.objects.create` (tests/records/test_models.py); a test of a service
calls that service, not a builder.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from patients import services
from patients.models import (
    STANDARD_VOLUME_ML,
    CTCDraw,
    CycleStatus,
    DrawStatus,
    Patient,
    TherapyLine,
    TreatmentCycle,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PASSWORD = "correct-horse-42"

_serial = itertools.count(1)


class _Default(Enum):
    # "Not given": for the draw's count, None is a value a caller may mean.
    COUNT = "3 for a resulted draw, none otherwise"


def user_with_role(
    role: str | None, *, username: str | None = None, password: str = PASSWORD
) -> User:
    """A user who can sign in with `password`, in the group `role` (none: no clinical role)."""
    if username is None:
        username = f"user{next(_serial)}"
    user = get_user_model().objects.create_user(username, password=password)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def patient(
    by: services.Actor,
    *,
    mrn: str | None = None,
    given_name: str = "Jane",
    family_name: str = "Doe",
    birth_date: date = date(1960, 5, 17),
    sex: str | None = None,
    cancer_type: str = "breast",
    diagnosed_on: date | None = None,
    oncologist: User | None = None,
) -> Patient:
    """A registered patient; the MRN is a new one and the sex follows the cancer type
    (male for prostate, female otherwise) unless given."""
    return services.register_patient(
        by=by,
        mrn=mrn if mrn is not None else f"AUTO-{next(_serial):05d}",
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
        sex=sex if sex is not None else ("male" if cancer_type == "prostate" else "female"),
        cancer_type=cancer_type,
        diagnosed_on=diagnosed_on,
        oncologist=oncologist,
    )


def therapy_line(
    patient: Patient,
    by: services.Actor,
    *,
    regimen: str = "Paclitaxel",
    start_date: date = date(2026, 1, 5),
    cycle_length_days: int = 21,
    contains_doxorubicin: bool = False,
    line_number: int | None = None,
    end_date: date | None = None,
) -> TherapyLine:
    """A therapy line; numbered after the patient's last one unless `line_number` is given."""
    return services.add_therapy_line(
        patient=patient,
        by=by,
        regimen=regimen,
        start_date=start_date,
        cycle_length_days=cycle_length_days,
        contains_doxorubicin=contains_doxorubicin,
        line_number=line_number,
        end_date=end_date,
    )


def cycle(
    line: TherapyLine,
    by: services.Actor,
    *,
    number: int = 1,
    scheduled_date: date | None = None,
    status: str = CycleStatus.PLANNED,
    given_date: date | None = None,
    status_reason: str | None = None,
) -> TreatmentCycle:
    """A cycle of `line`. Unless given: day 1 falls where cycle `number` falls in the line's
    rhythm, a given cycle was given on its day 1, and a delayed one for neutropenia."""
    if scheduled_date is None:
        scheduled_date = line.start_date + timedelta(days=line.cycle_length_days * (number - 1))
    if given_date is None and status == CycleStatus.GIVEN:
        given_date = scheduled_date
    if status_reason is None:
        status_reason = "Neutropenia" if status == CycleStatus.DELAYED else ""
    return services.plan_cycle(
        line=line,
        by=by,
        number=number,
        scheduled_date=scheduled_date,
        status=status,
        given_date=given_date,
        status_reason=status_reason,
    )


def cycles(
    line: TherapyLine,
    by: services.Actor,
    count: int,
    *,
    first_number: int = 1,
    first_date: date | None = None,
    every_days: int | None = None,
    status: str = CycleStatus.PLANNED,
) -> list[TreatmentCycle]:
    """`count` cycles numbered on from `first_number`, `every_days` apart (the line's cycle
    length unless given) from `first_date` (where the first one falls in the line's rhythm)."""
    step = every_days if every_days is not None else line.cycle_length_days
    if first_date is None:
        first_date = line.start_date + timedelta(days=line.cycle_length_days * (first_number - 1))
    return [
        cycle(
            line,
            by,
            number=first_number + k,
            scheduled_date=first_date + timedelta(days=step * k),
            status=status,
        )
        for k in range(count)
    ]


def draw(
    patient: Patient,
    by: services.Actor,
    *,
    drawn_at: datetime | date,
    ctc_count: int | None | _Default = _Default.COUNT,
    status: str = DrawStatus.RESULTED,
    count_qualifier: str = "",
    blood_volume_ml: Decimal = STANDARD_VOLUME_ML,
    accession: str = "",
    comment: str = "",
    now: datetime | None = None,
) -> CTCDraw:
    """A recorded draw. A plain date means 09:00 UTC that day; the count is 3 for a
    resulted draw and none for any other status unless given (`count_qualifier` ">"
    makes it a lower bound)."""
    if not isinstance(drawn_at, datetime):
        drawn_at = datetime(drawn_at.year, drawn_at.month, drawn_at.day, 9, tzinfo=UTC)
    if ctc_count is _Default.COUNT:
        ctc_count = 3 if status == DrawStatus.RESULTED else None
    return services.record_draw(
        patient=patient,
        by=by,
        drawn_at=drawn_at,
        status=status,
        ctc_count=ctc_count,
        count_qualifier=count_qualifier,
        blood_volume_ml=blood_volume_ml,
        accession=accession,
        comment=comment,
        now=now,
    )


def draws(
    patient: Patient,
    by: services.Actor,
    counts: Sequence[int | None],
    *,
    first: datetime | date,
    every_days: int = 7,
) -> list[CTCDraw]:
    """A draw per count, oldest first, `every_days` apart from `first`. A count of None is a
    rejected specimen (no result)."""
    return [
        draw(
            patient,
            by,
            drawn_at=first + timedelta(days=every_days * k),
            ctc_count=count,
            status=DrawStatus.RESULTED if count is not None else DrawStatus.REJECTED,
        )
        for k, count in enumerate(counts)
    ]


def version_of(record: Patient | TreatmentCycle | CTCDraw) -> int:
    """The version a record has in the database now: what an editor who just read it
    sends with an edit (every edit must name the version it was based on)."""
    return type(record).objects.values_list("version", flat=True).get(pk=record.pk)


def api_token(user: User, name: str = "test client") -> str:
    """A new API token's key for `user`, issued as the token endpoint issues it."""
    from patients.accounts import api_tokens

    return api_tokens.issue(user, name=name)[1]


# --- results to review ------------------------------------------------------------------


def local_at(day: date, hour: int = 9) -> datetime:
    """`hour` o'clock on `day` in the clinic's time zone (a builder's plain date is UTC)."""
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


def drawn_on(day: date) -> datetime:
    """A draw time on `day`: 9 o'clock, or now if `day` is today and it is not 9 yet (a
    draw in the future is refused, and the suite runs at any hour)."""
    return min(local_at(day), timezone.now())


def high_result(by: services.Actor, patient: Patient, day: date) -> CTCDraw:
    """1 CTC/7.5 mL three weeks before `day`, then 12 on `day`: a clear conversion,
    `conversion_to_unfavourable` (high) and `rise_beyond_noise` (review). The second draw."""
    draw(patient, by, drawn_at=local_at(day - timedelta(days=21)), ctc_count=1)
    return draw(patient, by, drawn_at=drawn_on(day), ctc_count=12)


def review_result(by: services.Actor, patient: Patient, day: date) -> CTCDraw:
    """A first sample, unfavourable: `baseline_unfavourable` (review)."""
    return draw(patient, by, drawn_at=drawn_on(day), ctc_count=9)
