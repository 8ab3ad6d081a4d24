"""DB_DISABLE_SERVER_SIDE_CURSORS: the switch for pgbouncer's transaction pooling.

The settings module is evaluated afresh under the environment given; on
PostgreSQL the access log's streamed export is then watched in pg_cursors.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from patients import audit
from patients.audit import chain
from patients.audit import views as audit_views
from patients.models import AccessEvent
from tests.paths import ROOT

SETTINGS_FILE = ROOT / "ctctrack" / "settings.py"
POSTGRES = "postgres://ctctrack:secret@db.example.org:6432/ctctrack"


def load_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """ctctrack/settings.py evaluated with DEBUG on, DATABASE_URL and these variables."""
    monkeypatch.delenv("DB_DISABLE_SERVER_SIDE_CURSORS", raising=False)
    monkeypatch.setenv("DEBUG", "True")
    monkeypatch.setenv("DATABASE_URL", POSTGRES)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_under_test", SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_server_side_cursors_stay_on_by_default(monkeypatch):
    settings = load_settings(monkeypatch)

    assert settings.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_the_switch_turns_them_off(monkeypatch):
    settings = load_settings(monkeypatch, DB_DISABLE_SERVER_SIDE_CURSORS="True")

    assert settings.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert settings.DATABASES["default"]["PORT"] == 6432  # pgbouncer's usual port, kept


def test_a_value_other_than_true_or_false_is_refused(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="DB_DISABLE_SERVER_SIDE_CURSORS='yes'"):
        load_settings(monkeypatch, DB_DISABLE_SERVER_SIDE_CURSORS="yes")


def _open_cursors() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="server-side cursors: PostgreSQL")
@pytest.mark.parametrize(("switch", "cursors"), [("False", 1), ("True", 0)])
def test_the_access_log_export_streams_without_a_server_side_cursor_when_switched_off(
    monkeypatch, nurse, switch, cursors
):
    for _ in range(3):
        audit.record(None, "view", user=nurse, target="patient page")
    loaded = load_settings(monkeypatch, DB_DISABLE_SERVER_SIDE_CURSORS=switch)
    monkeypatch.setitem(
        connection.settings_dict,
        "DISABLE_SERVER_SIDE_CURSORS",
        loaded.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"],
    )
    monkeypatch.setattr(audit_views, "CSV_CHUNK", 2)

    rows = audit_views._csv_rows(AccessEvent.objects.order_by("id"))
    next(rows), next(rows)  # the header, then the first row: the first chunk fetched

    assert _open_cursors() == cursors
    rows.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="server-side cursors: PostgreSQL")
def test_the_access_log_check_reads_it_in_chunks_without_a_server_side_cursor(monkeypatch, nurse):
    """By id, a chunk at a time (each with the patients its events listed): safe behind
    pgbouncer's transaction pooling whatever the switch says."""
    events = [audit.record(None, "view", user=nurse, target=f"page {k}") for k in range(5)]
    monkeypatch.setattr(chain, "CHAIN_CHUNK", 2)

    rows = chain.chain_rows()
    first = next(rows)

    assert _open_cursors() == 0
    assert [first["id"], *(row["id"] for row in rows)] == [e.pk for e in events]
