"""A cycle's day 1 as first planned (spec section 4): set on creation, kept by a delay
(and by the later cycles a delay moves along), moved by a correction of a planned
cycle's date; filled for the cycles stored before it existed (migration 0008)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from patients import assessment, services
from patients.assessment.loader import cycle_in, draw_in
from patients.models import CTCDraw, TreatmentCycle
from tests import builders

pytestmark = pytest.mark.django_db

DAY1 = date(2026, 3, 2)


def _first(cycle: TreatmentCycle) -> tuple[date, date]:
    """(day 1, day 1 as first planned) as stored."""
    fresh = TreatmentCycle.objects.get(pk=cycle.pk)
    return fresh.scheduled_date, fresh.first_scheduled_date


def _update(cycle: TreatmentCycle, by, **changes) -> TreatmentCycle:
    return services.update_cycle(
        cycle=cycle, by=by, changes=changes, version=builders.version_of(cycle), reason="Edit"
    )


def test_a_new_cycle_is_first_planned_on_its_day_1(oncologist, line):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1)

    assert _first(cycle) == (DAY1, DAY1)
    assert cycle.history.get().first_scheduled_date == DAY1


def test_a_cycle_entered_as_given_is_first_planned_on_its_day_1(oncologist, line):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1, status="given")

    assert _first(cycle) == (DAY1, DAY1)


def test_a_delay_keeps_the_first_planned_day_1(oncologist, line):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1)

    _update(
        cycle,
        oncologist,
        status="delayed",
        status_reason="Neutropenia",
        scheduled_date=DAY1 + timedelta(7),
    )

    assert _first(cycle) == (DAY1 + timedelta(7), DAY1)


def test_moving_a_delayed_cycle_again_keeps_the_first_planned_day_1(oncologist, line):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1, status="delayed")

    _update(cycle, oncologist, scheduled_date=DAY1 + timedelta(14))

    assert _first(cycle) == (DAY1 + timedelta(14), DAY1)


def test_a_delay_keeps_the_first_day_1_of_every_cycle_it_moves_along(oncologist, line):
    second, third = builders.cycles(line, oncologist, 2, first_number=2, first_date=DAY1)

    moved = services.delay_cycle_and_following(
        cycle=second,
        by=oncologist,
        new_date=DAY1 + timedelta(7),
        reason="Neutropenia",
        version=builders.version_of(second),
    )

    assert [c.pk for c in moved] == [second.pk, third.pk]
    assert _first(second) == (DAY1 + timedelta(7), DAY1)
    assert _first(third) == (DAY1 + timedelta(28), DAY1 + timedelta(21))
    assert TreatmentCycle.objects.get(pk=third.pk).status == "planned"


@pytest.mark.parametrize("days", [-2, 3])
def test_correcting_a_planned_cycles_day_1_moves_its_first_day_1_too(oncologist, line, days):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1)

    _update(cycle, oncologist, scheduled_date=DAY1 + timedelta(days))

    assert _first(cycle) == (DAY1 + timedelta(days), DAY1 + timedelta(days))
    newest, oldest = cycle.history.all()[:2]
    assert (oldest.first_scheduled_date, newest.first_scheduled_date) == (
        DAY1,
        DAY1 + timedelta(days),
    )


def test_a_change_that_leaves_a_planned_day_1_alone_keeps_the_first_day_1(oncologist, line):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1)
    _update(
        cycle,
        oncologist,
        status="delayed",
        status_reason="Neutropenia",
        scheduled_date=DAY1 + timedelta(7),
    )

    _update(cycle, oncologist, status="planned", status_reason="")  # the delay taken back

    assert _first(cycle) == (DAY1 + timedelta(7), DAY1)


def test_giving_a_cycle_on_another_day_keeps_its_first_planned_day_1(oncologist, line):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1)

    _update(
        cycle,
        oncologist,
        status="given",
        scheduled_date=DAY1 + timedelta(1),
        given_date=DAY1 + timedelta(1),
    )

    assert _first(cycle) == (DAY1 + timedelta(1), DAY1)


def test_the_first_planned_day_1_is_not_a_field_anyone_edits(oncologist, cycle):
    with pytest.raises(TypeError):
        services.update_cycle(
            cycle=cycle,
            by=oncologist,
            changes={"first_scheduled_date": DAY1},
            version=builders.version_of(cycle),
        )
    with pytest.raises(TypeError):
        services.plan_cycle(
            line=cycle.therapy_line,
            by=oncologist,
            number=2,
            scheduled_date=DAY1,
            first_scheduled_date=DAY1,
        )


def test_the_rules_are_given_the_first_planned_day_1_and_the_counts_qualifier(
    oncologist, patient, line
):
    cycle = builders.cycle(line, oncologist, scheduled_date=DAY1)
    _update(
        cycle,
        oncologist,
        status="delayed",
        status_reason="Neutropenia",
        scheduled_date=DAY1 + timedelta(7),
    )
    builders.draw(
        patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=1000, count_qualifier=">"
    )

    series = assessment.series_for(patient)
    (stored_cycle,) = series.cycles
    (stored_draw,) = series.draws

    assert cycle_in(stored_cycle).first_scheduled_date == DAY1
    assert draw_in(stored_draw).count_qualifier == ">"
    assert (series.assessments[0].draw.count_qualifier, series.assessments[0].draw.ctc_count) == (
        ">",
        1000,
    )


# --- the migration that filled it ---------------------------------------------------------

BEFORE = ("patients", "0007_treatmentcycle_review_rank")


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _write_version_1_rows(apps) -> dict[str, int]:
    """Cycles as version 1 stored them, with the change history each would have had."""
    user = apps.get_model("auth", "User").objects.create(username="v1-user")
    patient = apps.get_model("patients", "Patient").objects.create(
        mrn="V1",
        given_name="A",
        family_name="B",
        birth_date=date(1960, 1, 1),
        sex="female",
        cancer_type="breast",
    )
    line = apps.get_model("patients", "TherapyLine").objects.create(
        patient=patient,
        line_number=1,
        regimen="X",
        start_date=date(2026, 1, 5),
        cycle_length_days=21,
    )
    apps.get_model("patients", "CTCDraw").objects.create(
        patient=patient, drawn_at=_at(date(2026, 2, 25)), ctc_count=9, entered_by=user
    )
    cycles = apps.get_model("patients", "TreatmentCycle").objects
    history = apps.get_model("patients", "HistoricalTreatmentCycle").objects
    ids: dict[str, int] = {}

    def cycle(name: str, number: int, states: list[tuple[date, str]]) -> None:
        """A cycle whose history holds `states` (day 1, status), oldest first; it now
        stands as the last one."""
        day1, status = states[-1]
        reason = "Neutropenia" if status == "delayed" else ""
        row = cycles.create(
            therapy_line=line,
            number=number,
            scheduled_date=day1,
            status=status,
            status_reason=reason,
            given_date=day1 if status == "given" else None,
        )
        for k, (day, state) in enumerate(states):
            history.create(
                id=row.pk,
                therapy_line_id=line.pk,
                number=number,
                scheduled_date=day,
                status=state,
                status_reason="Neutropenia" if state == "delayed" else "",
                given_date=day if state == "given" else None,
                version=k + 1,
                created_at=row.created_at,
                history_date=_at(date(2026, 1, 1) + timedelta(k)),
                history_type="+" if k == 0 else "~",
            )
        ids[name] = row.pk

    cycle("delayed", 1, [(date(2026, 3, 2), "planned"), (date(2026, 3, 9), "delayed")])
    cycle("moved along", 2, [(date(2026, 3, 23), "planned"), (date(2026, 3, 30), "planned")])
    cycle("corrected earlier", 3, [(date(2026, 4, 20), "planned"), (date(2026, 4, 13), "planned")])
    cycle("entered as given", 4, [(date(2026, 2, 9), "given")])
    row = cycles.create(therapy_line=line, number=5, scheduled_date=date(2026, 5, 4))
    ids["no history"] = row.pk  # bulk-written (generate_cohort): no history rows at all
    return ids


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_first_planned_day_1_from_each_cycles_history():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    ids = _write_version_1_rows(executor.loader.project_state([BEFORE]).apps)

    executor.loader.build_graph()  # as Django's own migration tests do after migrating
    executor.migrate(executor.loader.graph.leaf_nodes())

    firsts = dict(TreatmentCycle.objects.values_list("pk", "first_scheduled_date"))
    assert {name: firsts[pk] for name, pk in ids.items()} == {
        "delayed": date(2026, 3, 2),  # the delay kept the planned day 1
        "moved along": date(2026, 3, 23),  # moved with a delay while still "planned"
        "corrected earlier": date(2026, 4, 13),  # the earliest day 1 while planned
        "entered as given": date(2026, 2, 9),  # never planned: its day 1
        "no history": date(2026, 5, 4),
    }
    history = TreatmentCycle.history.model.objects.order_by("id", "history_date")
    assert [(h.id, h.scheduled_date, h.first_scheduled_date) for h in history] == [
        (ids["delayed"], date(2026, 3, 2), date(2026, 3, 2)),
        (ids["delayed"], date(2026, 3, 9), date(2026, 3, 2)),
        (ids["moved along"], date(2026, 3, 23), date(2026, 3, 23)),
        (ids["moved along"], date(2026, 3, 30), date(2026, 3, 23)),
        (ids["corrected earlier"], date(2026, 4, 20), date(2026, 4, 20)),
        (ids["corrected earlier"], date(2026, 4, 13), date(2026, 4, 13)),
        (ids["entered as given"], date(2026, 2, 9), date(2026, 2, 9)),
    ]
    assert list(CTCDraw.objects.values_list("count_qualifier", flat=True)) == [""]
