"""How the audit package is wired in: the check that its middleware is installed
runs with every `manage.py check` (test_audit_record.py shows the events it writes)."""

from __future__ import annotations

import os
import subprocess
import sys

from patients.audit.middleware import check_audit_middleware
from tests.paths import ROOT

AUDIT_MIDDLEWARE = "patients.audit.middleware.AuditMiddleware"
# A fresh process: this test module's own import must not be what registers the check.
REGISTERED = """
import django
django.setup()
from django.core.checks import registry
print([check.__name__ for check in registry.registry.get_checks()])
"""


def test_the_app_registers_the_audit_middleware_check_at_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ctctrack.settings", "DEBUG": "True"}
    result = subprocess.run(
        [sys.executable, "-c", REGISTERED], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert "check_audit_middleware" in result.stdout, result.stderr


def test_the_audit_middleware_check_passes_with_the_projects_settings():
    assert check_audit_middleware(None) == []


def test_without_the_audit_middleware_the_check_is_an_error(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != AUDIT_MIDDLEWARE]

    messages = check_audit_middleware(None)

    assert [m.id for m in messages] == ["patients.E001"]
    assert AUDIT_MIDDLEWARE in messages[0].msg
