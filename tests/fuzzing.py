"""Shared by the fuzz tests: the hostile values every channel gets, each example run
in a transaction that is rolled back, and a snapshot of every clinical row and
history to compare before and after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.core.cache import cache
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from patients.models import Patient


def fuzz_settings(max_examples: int) -> settings:
    # Fixtures are per test, not per example: each example rolls its writes back.
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


MARKUP = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
# Hostile through any channel; the API's and the forms' tests add their own.
HOSTILE_STRINGS = (
    *MARKUP,
    "'; DROP TABLE patients_patient; --",
    "x" * 10_000,
    "\x00",
    "before\x00after",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\u202eevil\u200b",
    "Ωμέγα 漢字 🩸",
    "NaN",
    "Infinity",
    "-Infinity",
    "",
    "   ",
    "2026-02-30",
    "31/01/2026",
    "1e309",
    "-1",
    "1" + "0" * 30,
    "$\\alpha^$ {{ 7*7 }} %s%n",
)
# Text just under and just over every length limit a field or column might have.
LIMITS = st.sampled_from([32, 64, 100, 200, 255, 500, 1000, 2000]).flatmap(
    lambda n: st.sampled_from(["é" * n, "é" * (n + 1)])
)


class _Rollback(Exception):
    """Raised at the end of every example so its writes never reach the next one."""


@contextmanager
def rolled_back() -> Iterator[None]:
    """Nothing of the example's writes reaches the next one, nor anything cached from them:
    SQLite gives a rolled-back row's id to the next row, under which the cache (the lists'
    assessments and rows, keyed by id and data version) would otherwise answer."""
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass
    finally:
        cache.clear()


def snapshot() -> dict[str, Any]:
    """Every clinical row with every value, and the size of every change history."""
    state: dict[str, Any] = {}
    for model in apps.get_app_config("patients").get_models():
        if hasattr(model._meta, "simple_history_manager_attribute"):  # a tracked model
            state[model.__name__] = list(model.objects.order_by("pk").values())
            state[f"{model.__name__} history"] = model.history.count()
    teams = Patient.care_teams.through.objects.order_by("pk").values()
    state["patients' care teams"] = list(teams)
    return state
