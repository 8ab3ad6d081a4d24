"""Shared by the fuzz tests: run each example in a transaction that is rolled back,
and take a snapshot of every clinical row and history to compare before and after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.db import transaction


class _Rollback(Exception):
    """Raised at the end of every example so its writes never reach the next one."""


@contextmanager
def rolled_back() -> Iterator[None]:
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


def snapshot() -> dict[str, Any]:
    """Every clinical row with every value, and the size of every change history."""
    state: dict[str, Any] = {}
    for model in apps.get_app_config("patients").get_models():
        if hasattr(model, "history"):
            state[model.__name__] = list(model.objects.order_by("pk").values())
            state[f"{model.__name__} history"] = model.history.count()
    return state
