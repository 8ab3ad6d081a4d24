"""Every database constraint of a draw is refused first in Python, naming the field.

The services validate a draw without asking the database about its constraints
(`records._validate_draw`: Django runs each as a query, half of a lab message's
queries), because the field checks, `CTCDraw.clean()` and the services' own
checks refuse the same values with a message a person can act on. These tests
break each constraint through the services and check that: the message names the
field, no "Constraint ... is violated" reaches anyone, and nothing is saved.
A constraint added to the model without a case here fails the first test.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients import services
from patients.messages import ACCESSION_TAKEN, ERROR_REASON_REQUIRED
from patients.models import VOLUME_OUT_OF_RANGE, CTCDraw
from tests import builders

pytestmark = pytest.mark.django_db

DRAWN_AT = datetime(2026, 1, 2, 9, tzinfo=UTC)


def _record(patient: Any, by: Any, **fields: Any) -> CTCDraw:
    fields.setdefault("ctc_count", 2)
    return services.record_draw(patient=patient, by=by, drawn_at=DRAWN_AT, **fields)


def _correct(draw: CTCDraw, by: Any, **changes: Any) -> CTCDraw:
    version = builders.version_of(draw)
    return services.update_draw(draw=draw, by=by, changes=changes, version=version, reason="Typo")


# constraint name -> cases: (what is done, the field named, words of its message)
Case = tuple[Callable[[Any, Any, CTCDraw], Any], str, str]
CASES: dict[str, list[Case]] = {
    "draw_accession_unique_when_given": [
        (lambda p, by, d: _record(p, by, accession="CS-1"), "accession", ACCESSION_TAKEN),
        (lambda p, by, d: _correct(d, by, accession="CS-1"), "accession", ACCESSION_TAKEN),
    ],
    "draw_status_valid": [
        (lambda p, by, d: _record(p, by, status="lost"), "status", "not a valid choice"),
        (lambda p, by, d: _correct(d, by, status="lost"), "status", "not a valid choice"),
    ],
    "draw_count_only_when_resulted": [
        (lambda p, by, d: _record(p, by, ctc_count=None), "ctc_count", "needs a count"),
        (lambda p, by, d: _record(p, by, status="pending"), "ctc_count", "has no count"),
        (lambda p, by, d: _correct(d, by, status="failed"), "ctc_count", "has no count"),
    ],
    "draw_count_not_negative": [
        (lambda p, by, d: _record(p, by, ctc_count=-1), "ctc_count", "cannot be negative"),
        (lambda p, by, d: _correct(d, by, ctc_count=-3), "ctc_count", "cannot be negative"),
    ],
    "draw_count_qualifier_valid": [
        (lambda p, by, d: _record(p, by, count_qualifier="<"), "count_qualifier", "valid choice"),
    ],
    "draw_count_qualifier_only_when_resulted": [
        (
            lambda p, by, d: _record(p, by, status="pending", ctc_count=None, count_qualifier=">"),
            "count_qualifier",
            "no 'more than'",
        ),
    ],
    "draw_error_needs_reason": [
        (
            lambda p, by, d: services.mark_draw_entered_in_error(
                draw=d, by=by, reason="  ", version=builders.version_of(d)
            ),
            "error_reason",
            ERROR_REASON_REQUIRED,
        ),
    ],
    "draw_volume_range": [
        (
            lambda p, by, d: _record(p, by, blood_volume_ml=Decimal("0")),
            "blood_volume_ml",
            VOLUME_OUT_OF_RANGE,
        ),
        (
            lambda p, by, d: _record(p, by, blood_volume_ml=Decimal("60")),
            "blood_volume_ml",
            VOLUME_OUT_OF_RANGE,
        ),
        (
            lambda p, by, d: _correct(d, by, blood_volume_ml=Decimal("-1")),
            "blood_volume_ml",
            VOLUME_OUT_OF_RANGE,
        ),
    ],
}
ALL_CASES = [(name, *case) for name, cases in CASES.items() for case in cases]


def test_every_constraint_of_a_draw_has_its_cases_here():
    assert {c.name for c in CTCDraw._meta.constraints} == set(CASES)


@pytest.mark.parametrize(("constraint", "act", "field", "words"), ALL_CASES)
def test_a_value_a_constraint_forbids_is_refused_naming_the_field_and_nothing_is_saved(
    oncologist, patient, constraint, act, field, words
):
    on_record = _record(patient, oncologist, accession="CS-1")
    other = _record(patient, oncologist, accession="CS-2", ctc_count=4)
    history = CTCDraw.history.count()

    with pytest.raises(ValidationError) as refused:
        act(patient, oncologist, other)

    errors = refused.value.message_dict
    assert list(errors) == [field], errors
    assert any(words in message for message in errors[field]), errors
    assert not any("Constraint" in m for messages in errors.values() for m in messages)
    assert sorted(CTCDraw.objects.values_list("pk", flat=True)) == [on_record.pk, other.pk]
    assert CTCDraw.objects.get(pk=other.pk).version == 1
    assert CTCDraw.history.count() == history


def test_a_draw_is_recorded_without_asking_the_database_about_its_constraints(oncologist, patient):
    with CaptureQueriesContext(connection) as captured:
        _record(patient, oncologist, accession="CS-9")

    checks = [q["sql"] for q in captured.captured_queries if '"_check"' in q["sql"]]
    assert checks == []
    assert CTCDraw.objects.get().accession == "CS-9"
