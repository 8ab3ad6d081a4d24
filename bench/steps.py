"""The steps of `make bench`, run by `bench/run.py` once Django is set up on the bench database."""

from __future__ import annotations

import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import django
import gunicorn
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bench import imports, load, pages, report
from ctctrack.health import HEALTHZ_PATH
from patients.models import (
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.roles import NURSE

ROOT = Path(__file__).resolve().parent.parent
WORKLIST_DAYS = 7
LOAD_PATIENTS = 100  # patient pages under load: the first 100 synthetic patients, in turn


def prepare(run: Any) -> None:
    _say("Migrating the bench database and collecting static files")
    call_command("migrate", interactive=False, verbosity=0)
    # DEBUG is off: templates need the hashed static files' manifest, as in production.
    call_command("collectstatic", interactive=False, verbosity=0)


def machine(*, wrk_version: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (postgres,) = cursor.fetchone()
    return {
        "date": timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
        "uname -a": " ".join(platform.uname()),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical CPUs",
        "memory": _memory(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "PostgreSQL": postgres,
        "gunicorn": gunicorn.__version__,
        "load generator": wrk_version,
        "commit": _commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def bench_nurses(count: int) -> list[tuple[Any, str]]:
    """Nurses with random passwords, for the in-process client and for signing in over HTTP."""
    group = Group.objects.get(name=NURSE)
    nurses = []
    for k in range(count):
        password = secrets.token_urlsafe(16)
        user = get_user_model().objects.create_user(f"bench-nurse-{k + 1:02d}", password=password)
        user.groups.add(group)
        nurses.append((user, password))
    return nurses


# --- escalation -----------------------------------------------------------------------------


def measure_escalation(run: Any) -> None:
    """`escalate_flags` over the large cohort: the first run (every high result older than the
    delay) and a second one at once (nothing left to escalate), against the time to count
    the results waiting (the same filter, no work)."""
    from patients import services
    from patients.models import CTCDraw
    from patients.roles import ONCOLOGIST

    size = max(run.cohort)
    _say(f"{size:,} patients: escalate_flags")
    # The synthetic oncologists own the patients but cannot receive mail: give them an address.
    group = Group.objects.get(name=ONCOLOGIST)
    for user in get_user_model().objects.filter(username__startswith="syn-oncologist-"):
        user.email, user.is_active = f"{user.username}@bench.invalid", True
        user.save(update_fields=["email", "is_active"])
        user.groups.add(group)
    began = time.perf_counter()
    waiting = CTCDraw.objects.filter(review_rank=0, review_acknowledged=False).count()
    counted = time.perf_counter() - began
    began = time.perf_counter()
    first = services.escalate_flags()
    first_seconds = time.perf_counter() - began
    began = time.perf_counter()
    again = services.escalate_flags()
    again_seconds = time.perf_counter() - began
    run.escalation = {
        "patients": size,
        "high results waiting": waiting,
        "escalated": len(first.draw_ids),
        "recipients": len(first.recipients),
        "first run (s)": first_seconds,
        "second run (s)": again_seconds,
        "escalated again": len(again.draw_ids),
        "count alone (s)": counted,
    }


# --- the cohort ----------------------------------------------------------------------------


def generate(run: Any, size: int) -> None:
    _say(f"Generating the synthetic cohort up to {size:,} patients")
    out = StringIO()
    call_command("generate_cohort", patients=size, allow_without_debug=True, stdout=out)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would after a bulk load: fresh planner statistics
    today = timezone.localdate()
    run.cohort[size] = {
        "patients": Patient.objects.count(),
        "therapy lines": TherapyLine.objects.count(),
        "cycles": TreatmentCycle.objects.count(),
        "draws": CTCDraw.objects.count(),
        "imaging": ImagingAssessment.objects.count(),
        "worklist rows (7 days)": TreatmentCycle.objects.upcoming()
        .filter(
            scheduled_date__gte=today,
            scheduled_date__lt=today + timedelta(days=WORKLIST_DAYS),
        )
        .count(),
    }


def typical_patient() -> Patient:
    """Among the first 100 synthetic patients (in every cohort), the one with the median draws."""
    first = (
        Patient.objects.filter(mrn__lte="SYN-000100")
        .annotate(n=Count("draws"))
        .order_by("n", "mrn")
    )
    return list(first)[len(first) // 2]


# --- in-process pages -----------------------------------------------------------------------


def page_urls(patient: Patient) -> dict[str, str]:
    return {
        report.WORKLIST_PAGE: reverse("patients:worklist"),
        report.WORKLIST_API: reverse("api:worklist"),
        report.RESULTS_PAGE: reverse("patients:results"),
        report.RESULTS_API: reverse("api:results-to-review"),
        report.PATIENT_LIST: reverse("patients:list"),
        # The search itself is posted and kept in the session (see measure_pages).
        report.PATIENT_SEARCH: reverse("patients:list"),
        report.PATIENT_PAGE: reverse("patients:detail", args=[patient.pk]),
    }


def measure_pages(run: Any, size: int, nurse: Any) -> None:
    patient = typical_patient()
    client = _client(nurse)
    budget = 3.0 if run.options.quick else 10.0
    searching = _client(nurse)
    searching.post(reverse("patients:list"), {"q": patient.family_name})
    for name, url in page_urls(patient).items():
        _say(f"{size:,} patients: {name}")
        by = searching if name == report.PATIENT_SEARCH else client
        run.pages.setdefault(name, {})[size] = pages.measure(by, url, budget_seconds=budget)


def measure_charts(run: Any, nurse: Any) -> None:
    patient = typical_patient()
    client = _client(nurse)
    for fmt, name in (("svg", "chart-svg"), ("png", "chart-png")):
        _say(f"Chart ({fmt}): cold and cached")
        url = reverse(f"patients:{name}", args=[patient.pk])
        run.charts[fmt] = pages.measure_chart(client, url, runs=5 if run.options.quick else 11)


def _client(nurse: Any) -> Client:
    client = Client()
    client.force_login(nurse)
    return client


# --- CSV import ------------------------------------------------------------------------------


# A clinic's day of results: a lab file of this many patients, one result each.
MORNING_ROWS = 40


def measure_imports(run: Any) -> None:
    rows = run.options.import_rows
    by_mrn = dict(Patient.objects.values_list("mrn", "pk"))
    mrns = sorted(by_mrn)
    if not imports.orm_matches_app(imports.make_csv(mrns, 500)):
        run.notes.append("The import's COPY and ORM paths did NOT write the same rows.")
    _say(f"CSV import of {rows:,} rows: app, ORM path, bare inserts ({run.options.repeats}x)")
    text = imports.make_csv(mrns, rows)
    run.imports = imports.measure(text, runs=run.options.repeats, patient_ids=by_mrn)
    _say(f"CSV import of a lab's morning file: {MORNING_ROWS} patients' results (5x)")
    morning = imports.make_morning_csv(mrns, MORNING_ROWS, now=timezone.now())
    run.morning_import = imports.measure(morning, runs=5, patient_ids=by_mrn)


# --- HTTP load ------------------------------------------------------------------------------


# A 304 saves a fraction of a millisecond: hundreds of pairs resolve it.
CHART_PAIRS = 201


def measure_load(run: Any, wrk: str, env: dict[str, str], nurses: list[tuple[Any, str]]) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="ctctrack-bench-"))
    ids = list(
        Patient.objects.filter(mrn__lte=f"SYN-{LOAD_PATIENTS:06d}").values_list("pk", flat=True)
    )
    with load.shared_cache() as cache_url:
        if cache_url:
            env = {**env, "CACHE_URL": cache_url}
        run.load_cache = "Redis shared by the workers" if cache_url else "each worker's own memory"
        with load.Server(env, log_dir) as server:
            run.trivial_path = HEALTHZ_PATH  # no session, no query: the floor of every request
            _say(f"Signing in {len(nurses)} nurses through the login form")
            cookies = [server.sign_in(user.get_username(), password) for user, password in nurses]
            for fmt in ("svg", "png"):
                _say(f"Chart ({fmt}) over HTTP: cached and 304, {CHART_PAIRS} pairs")
                url = reverse(f"patients:chart-{fmt}", args=[typical_patient().pk])
                run.charts_http[fmt] = server.chart_pairs(url, cookies[0], pairs=CHART_PAIRS)
        endpoints = {
            report.LOAD_TRIVIAL: ([run.trivial_path], []),
            report.LOAD_WORKLIST: ([reverse("patients:worklist")], cookies),
            report.LOAD_PATIENT: ([reverse("patients:detail", args=[pk]) for pk in ids], cookies),
        }
        seconds, connections = run.options.load_seconds, run.options.connections
        for rep in range(run.options.repeats):
            for name, (paths, cookie_list) in endpoints.items():
                _say(f"Load {rep + 1}/{run.options.repeats}: {name}, {connections} connections")
                with load.Server(env, log_dir) as server:
                    _warm_up(server, paths, cookie_list[0] if cookie_list else "")
                    result = load.run_wrk_on(
                        server, wrk, paths, cookies=cookie_list,
                        connections=connections, seconds=seconds,
                    )  # fmt: skip
                run.load.setdefault(name, []).append(result)


def _warm_up(server: load.Server, paths: list[str], cookie: str) -> None:
    """Each page once (with the shared cache, its chart and rows are then cached for every
    worker), then the first twice more (a worker's first request loads templates)."""
    began = time.monotonic()
    for path in [*paths, paths[0], paths[0]]:
        status = server.get(path, cookie)[0]
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status} before the load test.")
        if time.monotonic() - began > 120:
            return


# --- profiles of what missed --------------------------------------------------------------


def profile_misses(run: Any, nurse: Any) -> None:
    client = _client(nurse)
    urls = page_urls(typical_patient())
    for name in report.missed_pages(run):
        _say(f"Profiling {name} at {run.options.patients:,} patients")
        run.profiles[name] = pages.profile(client, urls[name])
    for fmt in report.missed_charts(run):
        _say(f"Profiling 20 cached {fmt} charts")
        url = reverse(f"patients:chart-{fmt}", args=[typical_patient().pk])
        client.get(url)
        run.profiles[f"Chart ({fmt}), 20 requests served from the cache"] = pages.profile_call(
            lambda url=url: [client.get(url) for _ in range(20)], start_at=r"Client\.get"
        )
    if report.import_missed(run):
        _say("Profiling the CSV import")
        run.profiles["CSV import"] = _profile_import(min(run.options.import_rows, 20_000))


def _profile_import(rows: int) -> str:
    from patients import services

    mrns = sorted(Patient.objects.values_list("mrn", flat=True))
    text = imports.make_csv(mrns, rows)
    by = services.system_user("csv-import")
    found = pages.profile_call(
        lambda: imports.rolled_back(lambda: imports._app_import(text, by)),
        start_at=r"_app_import",
    )
    return f"{rows:,} rows, {found}"


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
