"""Benchmark: CSV import of CTC draws against a bare psycopg2 insert of the same rows.

    DATABASE_URL=postgres://ctctrack:ctctrack@127.0.0.1:5432/ctctrack \
        DEBUG=True .venv/bin/python bench/csv_import.py [--rows 100000] [--patients 2000]

Uses (and empties) a separate database, `<name>_bench`, created on the same
server. Reports times and the ratio of the app's rows per second to the bare
baseline's, measured in the same run, since absolute times drift on a shared
machine. Not part of the test suite: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the benchmark uses <name>_bench).")
    parts = urlparse(url)
    bench_name = parts.path.lstrip("/") + "_bench"
    _create_database(parts, bench_name)
    return urlunparse(parts._replace(path="/" + bench_name))


def _create_database(parts, name: str) -> None:  # noqa: ANN001
    import psycopg2

    conn = psycopg2.connect(
        dbname="postgres",
        user=parts.username,
        password=parts.password,
        host=parts.hostname,
        port=parts.port or 5432,
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=2_000)
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = _bench_database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctctrack.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)

    text, patients = _prepare(args.patients, args.rows)
    app_seconds = _time_app_import(text)
    bare_seconds = _time_bare_insert(text, patients)
    app_rate, bare_rate = args.rows / app_seconds, args.rows / bare_seconds
    print(f"rows: {args.rows:,}   patients: {args.patients:,}")
    for label, seconds, rate in [
        ("app import (parse, plan, COPY draws + history)", app_seconds, app_rate),
        ("bare psycopg2 execute_values insert", bare_seconds, bare_rate),
    ]:
        print(f"{label:<48} {seconds:6.2f} s  {rate:9,.0f} rows/s")
    print(f"ratio app / bare (rows per second): {app_rate / bare_rate:.2f}   (target >= 0.25)")


def _prepare(n_patients: int, n_rows: int) -> tuple[str, list[int]]:
    from patients import services

    by = services.system_user("bench")
    rng = random.Random(7)
    ids = []
    for i in range(n_patients):
        patient = services.register_patient(
            by=by,
            mrn=f"B{i:06d}",
            given_name="Bench",
            family_name=f"P{i}",
            birth_date=date(1960, 1, 1),
            sex="female",
            cancer_type="breast",
        )
        ids.append(patient.pk)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    lines = ["mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment"]
    for k in range(n_rows):
        when = start + timedelta(minutes=k)
        lines.append(
            f"B{k % n_patients:06d},{when.isoformat()},7.5,resulted,{rng.randint(0, 40)},A{k},"
        )
    return "\n".join(lines) + "\n", ids


def _time_app_import(text: str) -> float:
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        seconds = profile.runcall(_app_import, text)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        return seconds
    return _app_import(text)


def _app_import(text: str) -> float:
    from django.utils import timezone

    from patients import services
    from patients.csv_import import parse_csv, plan_import

    by = services.system_user("csv-import")
    began = time.perf_counter()
    rows, errors = parse_csv(text, tz=timezone.get_current_timezone(), now=timezone.now())
    plan = plan_import(rows, errors)
    assert plan.ok, plan.errors[:5]
    services.import_draws(rows=plan.new, patients=plan.patients, by=by, source="bench.csv")
    return time.perf_counter() - began


def _time_bare_insert(text: str, patient_ids: list[int]) -> float:
    """The same rows, parsed by the csv module and inserted with execute_values: the floor."""
    import csv
    import io

    from django.db import connection
    from psycopg2.extras import execute_values

    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE bare_draw (LIKE patients_ctcdraw INCLUDING DEFAULTS)")
    by_mrn = {f"B{i:06d}": pk for i, pk in enumerate(patient_ids)}
    began = time.perf_counter()
    values = [
        (
            by_mrn[r["mrn"]],
            r["drawn_at"],
            r["blood_volume_ml"],
            r["status"],
            int(r["ctc_count"]),
            r["accession"],
            r["comment"],
        )
        for r in csv.DictReader(io.StringIO(text))
    ]
    with connection.cursor() as cur:
        execute_values(
            cur.cursor,
            "INSERT INTO bare_draw (id, version, patient_id, drawn_at, blood_volume_ml, status, "
            "ctc_count, accession, comment, entered_by_id, entered_at, entered_in_error, "
            "error_reason) SELECT nextval('patients_ctcdraw_id_seq'), 1, v.* , 1, now(), false, '' "
            "FROM (VALUES %s) AS v(patient_id, drawn_at, blood_volume_ml, status, ctc_count, "
            "accession, comment)",
            values,
            template="(%s, %s::timestamptz, %s::numeric, %s, %s, %s, %s)",
            page_size=2000,
        )
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
