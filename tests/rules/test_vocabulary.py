"""The clinical vocabulary is defined once, in `patients.rules`, and every copy agrees with it.

`rules.py` cannot import Django, so the models build their choices from the
rules' enums and add labels. These tests pin what cannot simply be imported:
the choices, the database's checks and the worklist's partial index.
"""

from __future__ import annotations

import inspect
from datetime import date
from types import ModuleType

import pytest
from django.db.models import Q

from patients import demo, models, rules, services
from patients.interop.csv import imports as csv_imports
from patients.interop.fhir import resources as fhir_resources
from patients.interop.hl7 import parse as hl7_parse
from patients.management.commands import generate_cohort
from patients.models import CTCDraw, TherapyLine, TreatmentCycle
from patients.web.forms import DrawForm
from tests.paths import ROOT

PATIENTS = ROOT / "patients"


def _constraint(model: type, name: str) -> Q:
    (found,) = [c for c in model._meta.constraints if c.name == name]
    return found.condition


@pytest.mark.parametrize(
    ("choices", "enum"),
    [(models.CycleStatus, rules.CycleStatus), (models.DrawStatus, rules.DrawStatus)],
)
def test_the_model_choices_are_the_rules_statuses_in_the_same_order(choices, enum) -> None:
    assert [(m.name, m.value) for m in choices] == [(m.name, m.value) for m in enum]
    assert all(getattr(choices, m.name) == m for m in enum)


@pytest.mark.parametrize(
    ("model", "enum"),
    [(TreatmentCycle, rules.CycleStatus), (CTCDraw, rules.DrawStatus)],
)
def test_the_status_fields_offer_exactly_the_rules_statuses(model, enum) -> None:
    field = model._meta.get_field("status")

    assert [value for value, _ in field.choices] == [m.value for m in enum]
    assert all(label for _, label in field.choices)
    assert model.Status is getattr(models, enum.__name__)


def test_the_database_accepts_exactly_the_rules_statuses() -> None:
    cycle_statuses = _constraint(TreatmentCycle, "cycle_status_valid")
    draw_statuses = _constraint(CTCDraw, "draw_status_valid")

    assert cycle_statuses == Q(status__in=[m.value for m in rules.CycleStatus])
    assert draw_statuses == Q(status__in=[m.value for m in rules.DrawStatus])


def test_the_worklist_index_covers_the_upcoming_statuses_as_plain_values() -> None:
    (index,) = [i for i in TreatmentCycle._meta.indexes if i.name == "cycle_upcoming_day_1"]
    ((lookup, values),) = index.condition.children

    assert lookup == "status__in"
    assert list(values) == [status.value for status in rules.UPCOMING_CYCLE_STATUSES]
    # Plain strings: a migration that writes the condition out names no enum.
    assert {type(value) for value in values} == {str}


def test_upcoming_statuses_are_planned_and_delayed_in_the_enums_order() -> None:
    assert rules.UPCOMING_CYCLE_STATUSES == (rules.CycleStatus.PLANNED, rules.CycleStatus.DELAYED)


@pytest.mark.django_db
def test_upcoming_returns_the_planned_and_delayed_cycles_only(line: TherapyLine) -> None:
    day1 = date(2026, 2, 2)
    made = {
        status: TreatmentCycle.objects.create(
            therapy_line=line,
            number=number,
            scheduled_date=day1,
            first_scheduled_date=day1,
            given_date=day1 if status == rules.CycleStatus.GIVEN else None,
            status=status,
            status_reason="Neutropenia" if status in ("delayed", "cancelled") else "",
        )
        for number, status in enumerate(rules.CycleStatus, start=1)
    }

    upcoming = set(TreatmentCycle.objects.upcoming())

    assert upcoming == {made[rules.CycleStatus.PLANNED], made[rules.CycleStatus.DELAYED]}


@pytest.mark.parametrize(
    "module",
    [models, demo, csv_imports, fhir_resources, hl7_parse, generate_cohort],
    ids=lambda module: module.__name__,
)
def test_every_module_uses_the_rules_standard_volume(module: ModuleType) -> None:
    assert module.STANDARD_VOLUME_ML is rules.STANDARD_VOLUME_ML


def test_the_defaults_for_a_new_draw_are_the_rules_standard_volume() -> None:
    record_draw = inspect.signature(services.record_draw_and_assess).parameters["blood_volume_ml"]
    planned = demo.DrawPlan(date(2026, 2, 2), 9, rules.DrawStatus.RESULTED, 3)

    assert CTCDraw._meta.get_field("blood_volume_ml").default is rules.STANDARD_VOLUME_ML
    assert DrawForm().fields["blood_volume_ml"].initial is rules.STANDARD_VOLUME_ML
    assert record_draw.default is rules.STANDARD_VOLUME_ML
    assert planned.blood_volume_ml is rules.STANDARD_VOLUME_ML


def test_no_module_writes_the_standard_volume_out_again() -> None:
    copies = [
        path.relative_to(PATIENTS).as_posix()
        for path in PATIENTS.rglob("*.py")
        if "migrations" not in path.parts
        and path.name != "rules.py"
        and ('Decimal("7.5")' in (text := path.read_text()) or "Decimal('7.5')" in text)
    ]

    assert copies == []
