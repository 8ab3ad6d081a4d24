"""`python bench/worklist.py`: how the worklist and the results to review grow from 100 to
10,000 patients, alone.

The worklist part of `make bench` (issue 7: at 10,000 patients no more than 2x
the server time at 100), in a few minutes instead of twenty. Same setup as
`run.py`: PostgreSQL from `DATABASE_URL`, production settings, a synthetic
cohort from `generate_cohort`, in-process requests through the whole
middleware stack with a signed-in nurse (`pages.measure`: a warm-up, the query
count, then the median of timed requests).

Unlike `run.py`, the two cohorts live in two databases at once,
`<name>_bench_worklist_small` and `<name>_bench_worklist` (both dropped and
recreated; no other is touched), and the measurements alternate between them,
round after round: on a machine shared with other work, a busy minute then
slows both sizes alike. Each ratio is the median of the rounds' ratios.

    BENCH_PATIENTS (10000)  the large cohort
    BENCH_ROUNDS (5)        alternating rounds

`python bench/worklist.py --cpu`: what a request of each list costs the server
against a patient page's, at one size (issue 17: the worklist page and API and the
results to review at most 2x a patient page's CPU per request, and under load at
least half the patient pages' throughput). One cohort, in `<name>_bench_worklistcpu`
(dropped and recreated, or kept with `BENCH_REUSE=1` to measure again without
generating it anew). In-process: this process's CPU time around each request
(`time.process_time`: PostgreSQL's share is not in it), the median of each
request's timed runs, in rounds that visit every request in turn; each ratio to
the patient page is the median of the rounds' ratios. Then, unless
`BENCH_LOAD_SECONDS=0`, gunicorn under wrk (as `make bench`): requests per second
and server CPU per request of the worklist, the results to review and the patient
pages, one fresh server per run. `BENCH_PROFILE=1` prints a pyinstrument profile
of each list.

    BENCH_LOAD_SECONDS (20)  each wrk run; 0: none
    BENCH_REPEATS (3)        wrk runs per endpoint (medians)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 (the path must be set first)

SMALL = 100
# A second page exists only in the large cohort: it is compared with the first at 100.
FIRST_PAGE = {"worklist page 2": "worklist page", "worklist API page 2": "worklist API"}


def main() -> None:
    if sys.argv[1:] == ["--cpu"]:
        cpu_main()
        return
    large = int(os.getenv("BENCH_PATIENTS", "10000"))
    rounds = int(os.getenv("BENCH_ROUNDS", "5"))
    began = time.monotonic()
    server = run._postgres_url()
    names = {
        SMALL: run._fresh_database(server, suffix="_bench_worklist_small"),
        large: run._fresh_database(server, suffix="_bench_worklist"),
    }
    os.environ.update(run._bench_environment(names[large]))
    django.setup()
    from django.urls import reverse

    from bench import pages, steps

    record = run.Run(run.Options.from_env())
    clients = {}
    for size, url in names.items():
        _use(url)
        steps.prepare(record)
        (nurse, _password), *_ = steps.bench_nurses(1)
        steps.generate(record, size)
        clients[size] = steps._client(nurse)
        rows = record.cohort[size]["worklist rows (7 days)"]
        print(f"{size:,} patients, {rows:,} cycles due in 7 days", file=sys.stderr)
    paths = {
        "worklist page": reverse("patients:worklist"),
        "worklist page 2": reverse("patients:worklist") + "?page=2",
        "worklist API": reverse("api:worklist"),
        "worklist API page 2": reverse("api:worklist") + "?page=2",
        "results to review page": reverse("patients:results"),
        "results to review API": reverse("api:results-to-review"),
    }
    found: dict[str, dict[int, list[Any]]] = {name: {SMALL: [], large: []} for name in paths}
    for k in range(rounds):
        for size, url in names.items():
            _use(url)
            for name, path in paths.items():
                if size == SMALL and name in FIRST_PAGE:
                    continue  # one page only at this size
                found[name][size].append(pages.measure(clients[size], path, budget_seconds=3))
        print(f"round {k + 1} of {rounds} done", file=sys.stderr)
    for name, first in FIRST_PAGE.items():
        found[name][SMALL] = found[first][SMALL]
    print(_table(found, large))
    print(f"\n{time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.2f}")


def cpu_main() -> None:
    size = int(os.getenv("BENCH_PATIENTS", "10000"))
    rounds = int(os.getenv("BENCH_ROUNDS", "5"))
    load_seconds = int(os.getenv("BENCH_LOAD_SECONDS", "20"))
    repeats = int(os.getenv("BENCH_REPEATS", "3"))
    began = time.monotonic()
    server = run._postgres_url()
    suffix = "_bench_worklistcpu"
    if os.getenv("BENCH_REUSE", "") in ("", "0") or not _exists(server, suffix):
        url = run._fresh_database(server, suffix=suffix)
    else:
        url = _with_suffix(server, suffix)
    env = run._bench_environment(url)
    os.environ.update(env)
    django.setup()
    from django.urls import reverse

    from bench import load, pages, steps

    record = run.Run(run.Options.from_env())
    steps.prepare(record)
    steps.generate(record, size)
    nurses = _nurses(run.NURSES)
    client = steps._client(nurses[0][0])
    patient = steps.typical_patient()
    paths = {
        PATIENT_PAGE: reverse("patients:detail", args=[patient.pk]),
        "worklist page": reverse("patients:worklist"),
        "worklist API": reverse("api:worklist"),
        "results to review page": reverse("patients:results"),
        "results to review API": reverse("api:results-to-review"),
    }
    # The lists again with the cache empty: what the first look after a change costs.
    cold = _Cold(client)
    requests: dict[str, tuple[Any, str]] = {name: (client, path) for name, path in paths.items()}
    for name in ("worklist page", "results to review page"):
        requests[f"{name}, nothing cached"] = (cold, paths[name])
    found: dict[str, list[Any]] = {name: [] for name in requests}
    for k in range(rounds):
        for name, (by, path) in requests.items():
            found[name].append(pages.measure(by, path, min_runs=7, budget_seconds=2))
        print(f"round {k + 1} of {rounds} done", file=sys.stderr)
    if os.getenv("BENCH_PROFILE", "") not in ("", "0"):
        for name, path in paths.items():
            print(f"\n### {name}\n\n```\n{pages.profile(client, path)}\n```")
    print(_cpu_table(found, size))
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    if load_seconds > 0:
        loaded = _load(load, env, nurses, paths, load_seconds, repeats)
        print()
        print(_load_table(loaded))
    print(f"\n{time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.2f}")


PATIENT_PAGE = "patient page"


class _Cold:
    """A client whose every request finds the cache empty (the time includes emptying it,
    a few microseconds in local memory)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, *args: Any, **kwargs: Any) -> Any:
        from django.core.cache import cache

        cache.clear()
        return self.client.get(*args, **kwargs)


def _exists(server: str, suffix: str) -> bool:
    import psycopg2

    name = urlparse(server).path.lstrip("/") + suffix
    parts = urlparse(server)
    conn = psycopg2.connect(
        dbname="postgres",
        user=parts.username,
        password=parts.password,
        host=parts.hostname,
        port=parts.port or 5432,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        conn.close()


def _with_suffix(server: str, suffix: str) -> str:
    parts = urlparse(server)
    return urlunparse(parts._replace(path=parts.path + suffix))


def _nurses(count: int) -> list[tuple[Any, str]]:
    """The benchmark's nurses, with new passwords (a kept database has them already)."""
    import secrets

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from patients.roles import NURSE

    group = Group.objects.get(name=NURSE)
    nurses = []
    for k in range(count):
        password = secrets.token_urlsafe(16)
        user, _ = get_user_model().objects.get_or_create(username=f"bench-nurse-{k + 1:02d}")
        user.set_password(password)
        user.save()
        user.groups.add(group)
        nurses.append((user, password))
    return nurses


def _cpu_table(found: dict[str, list[Any]], size: int) -> str:
    base = found[PATIENT_PAGE]
    lines = [
        f"| request, {size:,} patients | CPU ms per request | vs the patient page (median of "
        "rounds) | each round | wall ms | queries | KiB |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, times in found.items():
        ratios = [t.cpu_ms / b.cpu_ms for t, b in zip(times, base, strict=True)]
        lines.append(
            f"| {name} | {statistics.median(t.cpu_ms for t in times):.1f} "
            f"| {statistics.median(ratios):.2f}x | {' '.join(f'{r:.2f}' for r in ratios)} "
            f"| {statistics.median(t.median_ms for t in times):.1f} "
            f"| {times[0].queries} | {times[0].kib:,.0f} |"
        )
    return "\n".join(lines)


def _load(
    load: Any,
    env: dict[str, str],
    nurses: list[tuple[Any, str]],
    paths: dict[str, str],
    seconds: int,
    repeats: int,
) -> dict[str, list[Any]]:
    """wrk on gunicorn, as `make bench`'s load step: the patient pages are the first 100
    synthetic patients' in turn; each list its first page."""
    import tempfile

    from django.urls import reverse

    from bench import steps
    from patients.models import Patient

    log_dir = Path(tempfile.mkdtemp(prefix="ctctrack-bench-"))
    with load.Server(env, log_dir) as server:
        cookies = [server.sign_in(user.get_username(), password) for user, password in nurses]
    first = Patient.objects.filter(mrn__lte=f"SYN-{steps.LOAD_PATIENTS:06d}")
    endpoints = {
        "patient pages": [
            reverse("patients:detail", args=[pk]) for pk in first.values_list("pk", flat=True)
        ],
        "worklist page": [paths["worklist page"]],
        "results to review page": [paths["results to review page"]],
    }
    found: dict[str, list[Any]] = {name: [] for name in endpoints}
    for rep in range(repeats):
        for name, urls in endpoints.items():
            print(f"load {rep + 1} of {repeats}: {name}", file=sys.stderr)
            with load.Server(env, log_dir) as server:
                steps._warm_up(server, urls[0], cookies[0])
                found[name].append(
                    load.run_wrk_on(server, load.ensure_wrk(), urls, cookies=cookies,
                                    connections=64, seconds=seconds)
                )  # fmt: skip
    return found


def _load_table(found: dict[str, list[Any]]) -> str:
    base = statistics.median(r.rps for r in found["patient pages"])
    lines = [
        "| under load (64 connections) | req/s | vs patient pages | server CPU ms/request "
        "| p50 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, results in found.items():
        rps = statistics.median(r.rps for r in results)
        cpu = statistics.median(r.cpu_ms_per_request or 0.0 for r in results)
        lines.append(
            f"| {name} | {rps:.1f} | {rps / base:.2f} | {cpu:.1f} "
            f"| {statistics.median(r.p50_ms for r in results):,.0f} "
            f"| {sum(r.errors for r in results)} |"
        )
    return "\n".join(lines)


def _use(database_url: str) -> None:
    """Point Django's connection at another database of the same server."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = database_url.rsplit("/", 1)[1]


def _table(found: dict[str, dict[int, list[Any]]], large: int) -> str:
    lines = [
        f"| request | {SMALL} patients (ms) | {large:,} patients (ms) | ratio "
        "(median of rounds) | each round | queries | KiB |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for name, sizes in found.items():
        small, big = sizes[SMALL], sizes[large]
        ratios = [b.median_ms / s.median_ms for s, b in zip(small, big, strict=True)]
        lines.append(
            f"| {name} | {statistics.median(t.median_ms for t in small):,.1f} "
            f"| {statistics.median(t.median_ms for t in big):,.1f} "
            f"| {statistics.median(ratios):.2f}x "
            f"| {' '.join(f'{r:.2f}' for r in ratios)} "
            f"| {small[0].queries} / {big[0].queries} "
            f"| {small[0].kib:,.0f} / {big[0].kib:,.0f} |"
        )
    note = "(page 2 at the large size is compared with page 1 at 100, which holds every row)"
    return "\n".join([*lines, "", note])


if __name__ == "__main__":
    main()
