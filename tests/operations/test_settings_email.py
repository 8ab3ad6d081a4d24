"""E-mail and link settings: EMAIL_URL or the EMAIL_* variables, the console locally.

The settings module is evaluated afresh under the environment given.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.paths import ROOT

SETTINGS_FILE = ROOT / "ctctrack" / "settings.py"
SMTP = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE = "django.core.mail.backends.console.EmailBackend"
PRODUCTION = {"DEBUG": "False", "SECRET_KEY": "x" * 64, "ALLOWED_HOSTS": "ctctrack.example.org"}
VARIABLES = (
    "EMAIL_URL",
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_TIMEOUT",
    "DEFAULT_FROM_EMAIL",
    "SERVER_EMAIL",
    "CTCTRACK_BASE_URL",
    "ALLOWED_HOSTS",
)


def load_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """ctctrack/settings.py evaluated with DEBUG on unless told, and these variables."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEBUG", "True")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_under_test", SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_locally_mail_is_printed_to_the_console(monkeypatch):
    settings = load_settings(monkeypatch)

    assert settings.EMAIL_BACKEND == CONSOLE
    assert settings.CTCTRACK_BASE_URL == "http://127.0.0.1:8000"


def test_locally_a_configured_server_is_used(monkeypatch):
    settings = load_settings(monkeypatch, EMAIL_HOST="mail.hospital.example")

    assert settings.EMAIL_BACKEND == SMTP
    assert settings.EMAIL_HOST == "mail.hospital.example"


def test_in_production_mail_goes_to_a_local_relay_unless_configured(monkeypatch):
    settings = load_settings(monkeypatch, **PRODUCTION)

    assert (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT) == (
        SMTP,
        "localhost",
        25,
    )
    assert settings.EMAIL_TIMEOUT == 30
    # Links go to the first host name the app answers, over HTTPS.
    assert settings.CTCTRACK_BASE_URL == "https://ctctrack.example.org"


def test_email_url_gives_server_account_tls_and_sender(monkeypatch):
    settings = load_settings(
        monkeypatch,
        **PRODUCTION,
        EMAIL_URL="submission://ctc%40hospital.example:s3cret@smtp.hospital.example"
        "?_default_from_email=ctctrack@hospital.example",
    )

    assert settings.EMAIL_BACKEND == SMTP
    assert (settings.EMAIL_HOST, settings.EMAIL_PORT) == ("smtp.hospital.example", 587)
    assert (settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD) == (
        "ctc@hospital.example",
        "s3cret",
    )
    assert (settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL) == (True, False)
    assert settings.DEFAULT_FROM_EMAIL == "ctctrack@hospital.example"


def test_the_email_variables_are_read_one_by_one(monkeypatch):
    settings = load_settings(
        monkeypatch,
        **PRODUCTION,
        EMAIL_HOST="smtp.hospital.example",
        EMAIL_PORT="465",
        EMAIL_HOST_USER="ctc",
        EMAIL_HOST_PASSWORD="s3cret",
        EMAIL_USE_SSL="True",
        DEFAULT_FROM_EMAIL="CTC Track <ctctrack@hospital.example>",
        CTCTRACK_BASE_URL="https://ctc.hospital.example/",
    )

    assert (settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_SSL) == (
        "smtp.hospital.example",
        465,
        True,
    )
    assert (settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD) == ("ctc", "s3cret")
    assert settings.DEFAULT_FROM_EMAIL == "CTC Track <ctctrack@hospital.example>"
    assert settings.SERVER_EMAIL == settings.DEFAULT_FROM_EMAIL
    assert settings.CTCTRACK_BASE_URL == "https://ctc.hospital.example"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMAIL_URL": "pigeon://loft"}, "EMAIL_URL: unknown scheme"),
        ({"EMAIL_USE_TLS": "True", "EMAIL_USE_SSL": "True"}, "not both"),
        ({"EMAIL_PORT": "smtp"}, "EMAIL_PORT='smtp'"),
        ({"CTCTRACK_BASE_URL": "ctctrack.hospital.example"}, "CTCTRACK_BASE_URL="),
    ],
)
def test_a_wrong_value_is_refused_with_its_name(monkeypatch, env, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_settings(monkeypatch, **env)
