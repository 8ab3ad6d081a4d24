from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate, post_save


def _sync_roles(**kwargs: Any) -> None:
    # Imported here: models are not ready while the app registry loads.
    from patients.roles import sync_roles

    sync_roles()


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # After migrate, when Django has created the permission rows.
        post_migrate.connect(_sync_roles, sender=self)
        # Imported here for the same reason: every sign-in event goes to the access log,
        # and `manage.py check` checks that the audit middleware is installed.
        from patients.audit import middleware  # noqa: F401 (registers the check)
        from patients.audit.signals import connect_signals

        connect_signals()
        # Cached rows name people (the worklist's who acknowledged, the patient list's
        # oncologist): a renamed account renders them again.
        from patients.web.fragments import names_changed

        post_save.connect(
            names_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid="ctctrack-row-names"
        )
