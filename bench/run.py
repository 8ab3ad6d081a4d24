"""`make bench`: does CTC Track stay fast as the data grows? Numbers, against baselines.

    .venv/bin/python bench/run.py          # or: make bench

Needs PostgreSQL: `DATABASE_URL` (postgres://...), or else `scripts/postgres.sh`
is run to start the local one. The benchmark drops and recreates its own
database, `<name>_bench_cohort`, on that server, and touches no other. It

1. generates a synthetic cohort of 100 patients and measures the worklist (page
   and API), the patient list and a patient page in-process: server time and
   queries; tops the cohort up to 10,000 patients and measures them again;
2. times a chart drawn cold and served from the cache;
3. times the CSV import against a bare `execute_values` insert of the same rows
   (and the import's ORM path, which SQLite uses);
4. serves the cohort with gunicorn and `gunicorn.conf.py` and loads it with wrk
   (64 connections, 30 s): the worklist, patient pages and a trivial endpoint;
5. profiles what misses a target and writes everything to `bench/results.md`.

Every figure is the median of several runs and is reported as a ratio to its
baseline measured in the same run, because absolute times drift on a shared
machine. Environment: BENCH_PATIENTS (10000), BENCH_SMALL (100: the small cohort,
the baseline of every page's ratio), BENCH_QUICK=1 (a smoke run of a few minutes at
1,000 patients, written to a temporary file, not results.md),
BENCH_LOAD_SECONDS (30), BENCH_CONNECTIONS (64), BENCH_REPEATS (3),
BENCH_IMPORT_ROWS (100000), BENCH_OUTPUT (the report's path).
"""

from __future__ import annotations

import os
import pickle
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load, report  # noqa: E402 (the path must be set first)

NURSES = 12  # "a dozen nurses opening the worklist at 8 a.m."


@dataclass
class Options:
    patients: int
    small: int  # the small cohort: the baseline of every page's ratio
    quick: bool
    load_seconds: int
    connections: int
    repeats: int
    import_rows: int
    output: Path

    @classmethod
    def from_env(cls) -> Options:
        quick = os.getenv("BENCH_QUICK", "") not in ("", "0")
        default_output = Path(tempfile.gettempdir()) / "ctctrack-bench-quick.md"
        return cls(
            patients=int(os.getenv("BENCH_PATIENTS", "1000" if quick else "10000")),
            small=int(os.getenv("BENCH_SMALL", "100")),
            quick=quick,
            load_seconds=int(os.getenv("BENCH_LOAD_SECONDS", "5" if quick else "30")),
            connections=int(os.getenv("BENCH_CONNECTIONS", "64")),
            repeats=int(os.getenv("BENCH_REPEATS", "1" if quick else "3")),
            import_rows=int(os.getenv("BENCH_IMPORT_ROWS", "10000" if quick else "100000")),
            output=Path(
                os.getenv("BENCH_OUTPUT")
                or (default_output if quick else ROOT / "bench" / "results.md")
            ),
        )


@dataclass
class Run:
    """Everything measured, for the report."""

    options: Options
    machine: dict[str, str] = field(default_factory=dict)
    cohort: dict[int, dict[str, int]] = field(default_factory=dict)  # size -> row counts
    pages: dict[str, dict[int, Any]] = field(default_factory=dict)  # page -> size -> PageTime
    charts: dict[str, Any] = field(default_factory=dict)
    charts_http: dict[str, load.ChartPairs] = field(default_factory=dict)  # over gunicorn
    imports: Any = None
    morning_import: Any = None  # a lab's morning file (`imports.make_morning_csv`)
    escalation: dict[str, float] = field(default_factory=dict)  # figure -> value
    load: dict[str, list[load.LoadResult]] = field(default_factory=dict)
    trivial_path: str = ""
    load_cache: str = ""  # where the load test's server kept its cache
    profiles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def main() -> None:
    options = Options.from_env()
    began = time.monotonic()
    wrk = load.ensure_wrk()
    base_url = _postgres_url()
    env = _bench_environment(_fresh_database(base_url))
    os.environ.update(env)
    django.setup()
    from bench import steps  # needs Django set up

    run = Run(options)
    steps.prepare(run)
    run.machine = steps.machine(wrk_version=load.wrk_version(wrk))
    nurses = steps.bench_nurses(NURSES)
    for size in (options.small, options.patients):
        steps.generate(run, size)
        steps.measure_pages(run, size, nurses[0][0])
    steps.measure_charts(run, nurses[0][0])
    steps.measure_imports(run)
    steps.measure_escalation(run)
    steps.measure_load(run, wrk, dict(os.environ), nurses)
    steps.profile_misses(run, nurses[0][0])
    run.seconds = time.monotonic() - began
    _keep(run)
    options.output.write_text(report.render(run))
    print(report.summary(run))
    print(f"\nWritten to {_shown(options.output)} in {run.seconds / 60:.1f} min.")


def _keep(run: Run) -> None:
    """The raw measurements, so the report can be written again: `run.py --render PICKLE`."""
    path = Path(tempfile.gettempdir()) / "ctctrack-bench-run.pickle"
    path.write_bytes(pickle.dumps(run))
    print(f"Raw measurements: {path}", file=sys.stderr)


def render_again(path: Path) -> None:
    """Write the report again from kept measurements (after changing the report's layout)."""
    os.environ.update({"DJANGO_SETTINGS_MODULE": "ctctrack.settings", "DEBUG": "True"})
    django.setup()  # the measurements' classes live in modules that import the models
    run = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, written just before
    run.options.output.write_text(report.render(run))
    print(report.summary(run))


def _postgres_url() -> str:
    url = os.getenv("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url
    print("DATABASE_URL is not PostgreSQL: starting the local one (scripts/postgres.sh)...")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh")], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(
            "The benchmark needs PostgreSQL. Set DATABASE_URL=postgres://user:password@host/name "
            f"(the user needs CREATEDB), or run scripts/postgres.sh as root on Debian.\n"
            f"{done.stderr.strip()}"
        )
    return done.stdout.strip().splitlines()[-1]


def _fresh_database(url: str, suffix: str = "_bench_cohort") -> str:
    """Drop and create `<name><suffix>` on the same server; return its URL."""
    import psycopg2

    parts = urlparse(url)
    name = parts.path.lstrip("/") + suffix
    conn = psycopg2.connect(
        dbname="postgres",
        user=parts.username,
        password=parts.password,
        host=parts.hostname,
        port=parts.port or 5432,
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunparse(parts._replace(path="/" + name))


def _bench_environment(database_url: str) -> dict[str, str]:
    """Production settings (DEBUG off), on plain HTTP over the loopback interface."""
    return {
        "DJANGO_SETTINGS_MODULE": "ctctrack.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        # No TLS on the loopback interface: no redirect to https://.
        "SECURE_SSL_REDIRECT": "False",
        # The benchmark's nurses have no authenticator app; the OTP middleware still runs.
        "CTCTRACK_REQUIRE_MFA": "False",
        "LOG_LEVEL": "WARNING",
        "MPLCONFIGDIR": os.getenv("MPLCONFIGDIR") or str(ROOT / ".mplconfig"),
        # Escalation e-mails stay in memory: the benchmark sends no mail.
        "EMAIL_URL": "memory://",
    }


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"]:
        render_again(Path(sys.argv[2]))
    else:
        main()
