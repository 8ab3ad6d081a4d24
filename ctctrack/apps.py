from __future__ import annotations

from django.apps import AppConfig


class CtctrackConfig(AppConfig):
    """The project package as an app, only so that its system checks are registered."""

    name = "ctctrack"
    verbose_name = "CTC Track"

    def ready(self) -> None:
        # Imported for its @register decorators.
        from ctctrack import checks  # noqa: F401
