"""Production is whatever runs with DEBUG=False: the secure settings are then on by
default, and `check --deploy` is clean.

The settings module is evaluated afresh under a production environment (as a
module of its own, next to the test run's settings), and the deploy checks run
in a real `manage.py` process under that environment.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.paths import ROOT

SETTINGS_FILE = ROOT / "ctctrack" / "settings.py"
PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "CTCTRACK_AUDIT_KEY": secrets.token_urlsafe(48),
    "ALLOWED_HOSTS": "ctctrack.example.org",
}
_READ_BY_SETTINGS = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CTCTRACK_", "SECURE_")


def load_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """ctctrack/settings.py evaluated under exactly this environment."""
    for name in list(os.environ):
        if name.startswith(_READ_BY_SETTINGS):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_under_test", SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def production(monkeypatch) -> ModuleType:
    return load_settings(monkeypatch, **PRODUCTION)


def test_production_needs_a_secret_key(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY"):
        load_settings(monkeypatch, DEBUG="False", ALLOWED_HOSTS="ctctrack.example.org")


def test_build_time_commands_run_without_a_secret_key_but_nothing_else_does(monkeypatch):
    keyless = load_settings(
        monkeypatch, DEBUG="False", CTCTRACK_MANAGEMENT_COMMAND="makemigrations"
    )
    assert keyless.SECRET_KEY == ""  # Django refuses any later use of an empty key

    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY"):
        load_settings(monkeypatch, DEBUG="False", CTCTRACK_MANAGEMENT_COMMAND="runserver")


def test_production_redirects_to_https_and_sends_hsts_for_a_year(production):
    assert production.SECURE_SSL_REDIRECT is True
    assert production.SECURE_HSTS_SECONDS == 365 * 24 * 3600
    assert production.SECURE_HSTS_INCLUDE_SUBDOMAINS is True
    assert production.SECURE_HSTS_PRELOAD is False


def test_production_cookies_are_secure_httponly_and_host_only(production):
    assert production.SESSION_COOKIE_SECURE is True
    assert production.CSRF_COOKIE_SECURE is True
    assert production.SESSION_COOKIE_HTTPONLY is True
    assert production.CSRF_COOKIE_HTTPONLY is True
    assert production.SESSION_COOKIE_NAME.startswith("__Host-")
    assert production.CSRF_COOKIE_NAME.startswith("__Host-")


def test_every_environment_denies_framing_sniffing_and_cross_site_referrers(production):
    assert production.X_FRAME_OPTIONS == "DENY"
    assert production.SECURE_CONTENT_TYPE_NOSNIFF is True
    assert production.SECURE_REFERRER_POLICY == "same-origin"


def test_production_requires_two_factor_sign_in(production):
    assert production.CTCTRACK_REQUIRE_MFA is True


def test_production_can_turn_two_factor_off_only_by_saying_so(monkeypatch):
    off = load_settings(monkeypatch, **PRODUCTION, CTCTRACK_REQUIRE_MFA="False")

    assert off.CTCTRACK_REQUIRE_MFA is False


def test_the_local_demo_runs_without_https_or_two_factor(monkeypatch):
    local = load_settings(monkeypatch, DEBUG="True")

    assert local.SECURE_SSL_REDIRECT is False
    assert local.SECURE_HSTS_SECONDS == 0
    assert local.SESSION_COOKIE_SECURE is False
    assert local.CTCTRACK_REQUIRE_MFA is False


def test_a_tls_terminating_proxy_is_trusted_only_when_named(monkeypatch, production):
    proxied = load_settings(
        monkeypatch, **PRODUCTION, CTCTRACK_PROXY_SSL_HEADER="X-Forwarded-Proto"
    )

    assert not hasattr(production, "SECURE_PROXY_SSL_HEADER")
    assert proxied.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")


def test_hsts_preload_is_opt_in_and_then_checked(monkeypatch, production):
    preload = load_settings(monkeypatch, **PRODUCTION, SECURE_HSTS_PRELOAD="True")

    assert production.SILENCED_SYSTEM_CHECKS == ["security.W021"]
    assert preload.SECURE_HSTS_PRELOAD is True
    assert preload.SILENCED_SYSTEM_CHECKS == []


def test_a_malformed_switch_is_refused(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="CTCTRACK_REQUIRE_MFA='yes'"):
        load_settings(monkeypatch, DEBUG="True", CTCTRACK_REQUIRE_MFA="yes")


def test_the_session_limits_come_from_the_environment(monkeypatch):
    custom = load_settings(
        monkeypatch,
        DEBUG="True",
        CTCTRACK_IDLE_TIMEOUT_SECONDS="600",
        CTCTRACK_SESSION_MAX_AGE_SECONDS="28800",
    )

    assert custom.CTCTRACK_IDLE_TIMEOUT_SECONDS == 600
    assert custom.SESSION_COOKIE_AGE == 28800


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE is set by the browser tests' conftest for their live server;
    # a production process never has it, and `check --deploy` rightly refuses it.
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_READ_BY_SETTINGS) and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_two_factor_is_turned_off_in_production():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, CTCTRACK_REQUIRE_MFA="False"
    )

    assert result.returncode != 0
    assert "ctctrack.W001" in result.stderr


def test_check_deploy_fails_when_more_than_two_proxies_are_trusted():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        CTCTRACK_TRUSTED_PROXY_COUNT="3",
    )

    assert result.returncode != 0
    assert "ctctrack.W002" in result.stderr


def test_check_deploy_is_clean_behind_nginx():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        CTCTRACK_TRUSTED_PROXY_COUNT="1",
    )

    assert result.returncode == 0, result.stdout + result.stderr
