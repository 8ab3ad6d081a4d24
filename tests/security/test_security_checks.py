"""The project's own system checks (ctctrack/checks.py): each passes with the project's
settings and fails, with its id, when the safeguard it guards is weakened."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import checks as django_checks

from ctctrack.checks import (
    check_content_security_policy,
    check_login_throttling,
    check_mfa_required,
    check_middleware,
    check_session_limits,
    check_trusted_proxy_count,
)


def _ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_the_projects_settings_pass_every_check(settings):
    # As in production (the test run's DEBUG=True environment leaves it off).
    settings.CTCTRACK_REQUIRE_MFA = True
    settings.CTCTRACK_AUDIT_KEY = "a key of its own, from the environment"

    messages = django_checks.run_checks(include_deployment_checks=True, tags=["security"])

    assert [m for m in messages if m.id.startswith("ctctrack.")] == []


def test_the_checks_are_registered_with_the_deploy_ones_apart():
    always = django_checks.registry.registry.get_checks(include_deployment_checks=False)
    deploy = django_checks.registry.registry.get_checks(include_deployment_checks=True)

    assert {check_middleware, check_content_security_policy, check_session_limits} <= set(always)
    assert {check_login_throttling, check_mfa_required} <= set(deploy) - set(always)


# --- middleware --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing",
    [
        "csp.middleware.CSPMiddleware",
        "ctctrack.middleware.NoStoreMiddleware",
        "patients.accounts.middleware.SessionTimeoutMiddleware",
        "patients.accounts.middleware.RequireMFAMiddleware",
        "axes.middleware.AxesMiddleware",
    ],
)
def test_a_missing_safeguard_middleware_is_an_error(settings, missing):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != missing]

    messages = check_middleware(None)

    assert _ids(messages) == ["ctctrack.E001"]
    assert missing in messages[0].msg


# --- content security policy ---------------------------------------------------------------------


def test_a_policy_without_script_or_default_source_is_an_error(settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"img-src": ["'self'"]}}

    assert _ids(check_content_security_policy(None)) == ["ctctrack.E002"]


@pytest.mark.parametrize("unsafe", ["'unsafe-inline'", "'unsafe-eval'", "*", "https:"])
def test_a_policy_that_lets_other_scripts_run_is_an_error(settings, unsafe):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": ["'self'", unsafe]}}

    messages = check_content_security_policy(None)

    assert _ids(messages) == ["ctctrack.E003"]
    assert unsafe in messages[0].msg


def test_default_src_counts_when_script_src_is_absent(settings):
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {"default-src": ["'self'", "'unsafe-inline'"]}
    }

    assert _ids(check_content_security_policy(None)) == ["ctctrack.E003"]


def test_no_policy_at_all_is_an_error(settings):
    del settings.CONTENT_SECURITY_POLICY

    assert _ids(check_content_security_policy(None)) == ["ctctrack.E002"]


# --- sessions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_age", [None, 0, 12 * 3600 + 1, "43200"])
def test_a_session_age_over_12_hours_or_unset_is_an_error(settings, max_age):
    settings.CTCTRACK_SESSION_MAX_AGE_SECONDS = max_age

    assert "ctctrack.E004" in _ids(check_session_limits(None))


def test_a_cookie_that_outlives_the_session_limit_is_an_error(settings):
    settings.SESSION_COOKIE_AGE = 14 * 24 * 3600  # Django's default, two weeks

    assert _ids(check_session_limits(None)) == ["ctctrack.E005"]


@pytest.mark.parametrize("idle", [None, 0, -1, 13 * 3600])
def test_an_idle_timeout_unset_or_longer_than_the_session_is_an_error(settings, idle):
    settings.CTCTRACK_IDLE_TIMEOUT_SECONDS = idle

    assert _ids(check_session_limits(None)) == ["ctctrack.E006"]


# --- sign-in throttling -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("AXES_FAILURE_LIMIT", 10, "AXES_FAILURE_LIMIT is 10"),
        ("AXES_COOLOFF_TIME", None, "AXES_COOLOFF_TIME"),
        ("AXES_COOLOFF_TIME", timedelta(0), "AXES_COOLOFF_TIME"),
        ("AXES_LOCKOUT_PARAMETERS", ["ip_address"], "does not lock by username"),
        ("AXES_ENABLED", False, "AXES_ENABLED is False"),
        (
            "AUTHENTICATION_BACKENDS",
            ["django.contrib.auth.backends.ModelBackend"],
            "not an axes backend",
        ),
    ],
)
def test_weakened_throttling_is_an_error(settings, setting, value, problem):
    setattr(settings, setting, value)

    messages = check_login_throttling(None)

    assert _ids(messages) == ["ctctrack.E007"]
    assert problem in messages[0].msg


def test_throttling_without_axes_installed_is_an_error(settings):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "axes"]

    messages = check_login_throttling(None)

    assert _ids(messages) == ["ctctrack.E007"]
    assert "'axes' is not in INSTALLED_APPS" in messages[0].msg


# --- two-factor ----------------------------------------------------------------------------------


def test_production_without_required_two_factor_gets_a_warning(settings):
    settings.DEBUG = False
    settings.CTCTRACK_REQUIRE_MFA = False

    messages = check_mfa_required(None)

    assert _ids(messages) == ["ctctrack.W001"]
    assert messages[0].level == django_checks.WARNING


def test_production_with_required_two_factor_passes(settings):
    settings.DEBUG = False
    settings.CTCTRACK_REQUIRE_MFA = True

    assert check_mfa_required(None) == []


def test_the_local_demo_may_run_without_two_factor(settings):
    settings.DEBUG = True
    settings.CTCTRACK_REQUIRE_MFA = False

    assert check_mfa_required(None) == []


# --- the trusted proxy count -------------------------------------------------------------------


def test_the_trusted_proxy_check_is_a_deploy_check():
    always = django_checks.registry.registry.get_checks(include_deployment_checks=False)
    deploy = django_checks.registry.registry.get_checks(include_deployment_checks=True)

    assert check_trusted_proxy_count in set(deploy) - set(always)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_no_proxy_nginx_or_a_balancer_and_nginx_pass(settings, count):
    settings.CTCTRACK_TRUSTED_PROXY_COUNT = count

    assert check_trusted_proxy_count(None) == []


def test_more_than_two_trusted_proxies_is_a_warning(settings):
    settings.CTCTRACK_TRUSTED_PROXY_COUNT = 3

    messages = check_trusted_proxy_count(None)

    assert _ids(messages) == ["ctctrack.W002"]
    assert messages[0].level == django_checks.WARNING
    assert "X-Forwarded-For" in messages[0].msg


@pytest.mark.parametrize("count", [-1, "1", None, True])
def test_a_trusted_proxy_count_that_is_not_a_count_is_an_error(settings, count):
    settings.CTCTRACK_TRUSTED_PROXY_COUNT = count

    assert _ids(check_trusted_proxy_count(None)) == ["ctctrack.E008"]
