"""scripts/backup.sh and scripts/restore-check.sh, run as an operator runs them.

A real pg_dump of the test database, restored by a real pg_restore into a
scratch database on the same server, checked by real `manage.py` processes.
Then the ways a backup goes bad: cut short, damaged, a manifest that disagrees,
a broken access log, a missing migration. Each must fail with a message naming
what is wrong, and leave no scratch database behind.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from patients import audit
from patients.models import CTCDraw
from tests.paths import ROOT


def _pg_dump_found() -> bool:
    return bool(shutil.which("pg_dump") or glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))


pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="backups are pg_dump archives: run with DATABASE_URL=postgres://...",
    ),
    pytest.mark.skipif(
        not _pg_dump_found(),
        reason="pg_dump not found (Debian: apt-get install postgresql-client)",
    ),
    # The scripts are other processes: they see committed data only.
    pytest.mark.django_db(transaction=True),
]


def _database_url() -> str:
    s = connection.settings_dict
    user, password = quote(s["USER"], safe=""), quote(s["PASSWORD"] or "", safe="")
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{user}:{password}@{host}:{port}/{s['NAME']}"


def _run(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DEBUG": "True",
        "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", str(ROOT / ".mplconfig")),
        "PYTHON": sys.executable,
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _sql(statement: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _scratch_databases() -> list[str]:
    pattern = connection.settings_dict["NAME"] + "_restore_check_%"
    rows = _sql("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])
    return [name for (name,) in rows]


def _backup(directory: Path) -> Path:
    result = _run("backup.sh", directory)
    assert result.returncode == 0, result.stderr
    dump = Path(result.stdout.strip())
    assert dump.parent == directory and dump.suffix == ".dump"
    return dump


def _restore_check(dump: Path, *options: str) -> subprocess.CompletedProcess[str]:
    result = _run("restore-check.sh", *options, dump)
    assert _scratch_databases() == []  # dropped, whether the check passed or not
    return result


def _manifest(dump: Path) -> dict[str, int]:
    lines = dump.with_suffix(".manifest").read_text().splitlines()
    return {t: int(n) for t, n in (line.split() for line in lines if not line.startswith("#"))}


def _resum(dump: Path) -> None:
    """What someone covering their tracks does: checksums computed again over the edit."""
    names = [dump.name, dump.with_suffix(".manifest").name]
    sums = subprocess.run(["sha256sum", *names], cwd=dump.parent, capture_output=True, text=True)
    dump.with_suffix(".sha256").write_text(sums.stdout)


@pytest.fixture
def record(draw, nurse) -> None:
    """A patient with a draw, its history, and three reads in the access log."""
    for _ in range(3):
        audit.record(None, "view", user=nurse, patient=draw.patient, target="patient page")


def test_a_backup_restores_and_passes_every_check(record, tmp_path):
    dump = _backup(tmp_path)

    assert {p.suffix for p in tmp_path.iterdir()} == {".dump", ".manifest", ".sha256"}
    assert oct(dump.stat().st_mode & 0o777) == "0o600"  # patient data: the owner's only
    counts = _manifest(dump)
    assert counts["public.patients_ctcdraw"] == CTCDraw.objects.count() == 1
    assert counts["public.patients_historicalctcdraw"] == 1
    assert counts["public.patients_accessevent"] == 3
    result = _restore_check(dump)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "Audit chain intact: 3 events" in result.stdout
    assert f"all {len(counts)} tables match" in result.stdout


def test_a_dump_cut_short_fails_its_checksum(record, tmp_path):
    dump = _backup(tmp_path)
    with dump.open("r+b") as file:
        file.truncate(dump.stat().st_size // 2)

    result = _restore_check(dump)

    assert result.returncode == 1
    assert "FAILED: checksum" in result.stderr


def test_a_damaged_dump_fails_to_restore_even_with_matching_checksums(record, tmp_path):
    dump = _backup(tmp_path)
    with dump.open("r+b") as file:
        file.truncate(dump.stat().st_size // 2)
    _resum(dump)

    result = _restore_check(dump)

    assert result.returncode == 1
    assert "FAILED: pg_restore could not restore" in result.stderr


def test_a_copy_with_other_row_counts_than_the_manifest_fails(record, tmp_path):
    dump = _backup(tmp_path)
    manifest = dump.with_suffix(".manifest")
    manifest.write_text(
        manifest.read_text().replace("public.patients_ctcdraw 1\n", "public.patients_ctcdraw 2\n")
    )
    _resum(dump)

    result = _restore_check(dump)

    assert result.returncode == 1
    assert "public.patients_ctcdraw: 2 rows at backup, 1 in the copy" in result.stderr


def test_a_backup_of_a_tampered_access_log_fails(record, tmp_path):
    first = _sql("SELECT min(id) FROM patients_accessevent")[0][0]
    _sql("ALTER TABLE patients_accessevent DISABLE TRIGGER USER")
    try:
        _sql("UPDATE patients_accessevent SET target = 'edited' WHERE id = %s", [first])
    finally:
        _sql("ALTER TABLE patients_accessevent ENABLE TRIGGER USER")
    dump = _backup(tmp_path)

    result = _restore_check(dump)

    assert result.returncode == 1
    assert f"FAILED: access log: CommandError: Broken at event #{first}" in result.stderr


def test_a_backup_missing_a_migration_fails(record, tmp_path):
    (app, name, applied) = _sql(
        "DELETE FROM django_migrations WHERE id = (SELECT max(id) FROM django_migrations)"
        " RETURNING app, name, applied"
    )[0]
    try:
        dump = _backup(tmp_path)
    finally:
        _sql(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
            [app, name, applied],
        )

    result = _restore_check(dump)

    assert result.returncode == 1
    assert "FAILED: migrations" in result.stderr


def test_the_access_log_check_takes_an_anchor_hash(record, tmp_path):
    dump = _backup(tmp_path)

    result = _restore_check(dump, "--anchor", "f" * 64)

    assert result.returncode == 1
    assert "no event has the anchor hash" in result.stderr
