"""`python bench/scale.py`: every list and the patient page at 1,000 and at 100,000 patients,
and the bulk commands at 100,000.

Issue 17's scale target: the worklist, the results to review, the patient list,
the patient search and the patient page at 100,000 patients (about 1.8 million
draws) within 2x of their time at 1,000, with the same query counts; and
`manage.py refresh_review_ranks` and `manage.py escalate_flags` at 100,000
patients in a documented time. `make bench` measures the same pages at
`BENCH_SMALL` and `BENCH_PATIENTS` but one size after the other, with the
charts, the import and the HTTP load besides: over an hour at 100,000 patients.
This measures only what scales, in about half an hour (most of it generating
the cohort).

Same setup as `run.py`: PostgreSQL from `DATABASE_URL`, production settings,
synthetic cohorts from `generate_cohort`, in-process requests through the whole
middleware stack with a signed-in nurse (`pages.measure`: a warm-up, the query
count, then the median of timed requests). As in `worklist.py` the two cohorts
live in two databases at once, `<name>_bench_scale_small` and `<name>_bench_scale`,
and the measurements alternate between them round after round, so that a busy
minute on a shared machine slows both sizes alike; each ratio is the median of
the rounds' ratios. Then, on the large cohort: `refresh_review_ranks` (every
rank recomputed; none changes, the cohort's are current) and `escalate_flags`
twice (the first run escalates every high result older than the delay, the
second nothing), each inside a transaction rolled back afterwards, e-mail to
memory, so that the database can be measured again.

    BENCH_SMALL (1000)       the small cohort
    BENCH_PATIENTS (100000)  the large cohort
    BENCH_ROUNDS (5)         alternating rounds
    BENCH_COMMANDS=0         the pages only, not the two commands
    BENCH_KEEP_DATABASES=1   use the two databases as the last run left them (generate_cohort
                             tops a cohort up, so this only skips generating it again)

Both databases are left in place for a look afterwards; drop them when done
(about 5 GB at 100,000 patients).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 (the path must be set first)

SUFFIX = "_bench_scale"


def main() -> None:
    small = int(os.getenv("BENCH_SMALL", "1000"))
    large = int(os.getenv("BENCH_PATIENTS", "100000"))
    rounds = int(os.getenv("BENCH_ROUNDS", "5"))
    keep = os.getenv("BENCH_KEEP_DATABASES", "") not in ("", "0")
    with_commands = os.getenv("BENCH_COMMANDS", "1") not in ("", "0")
    began = time.monotonic()
    server = run._postgres_url()
    names = {
        small: _database(server, SUFFIX + "_small", keep=keep),
        large: _database(server, SUFFIX, keep=keep),
    }
    os.environ.update(run._bench_environment(names[large]))
    django.setup()
    from bench import pages, report, steps

    record = run.Run(run.Options.from_env())
    clients, urls = {}, {}
    for size, url in names.items():
        _use(url)
        steps.prepare(record)
        nurse = _nurse(steps)
        steps.generate(record, size)
        clients[size] = steps._client(nurse)
        urls[size] = steps.page_urls(steps.typical_patient())
        searching = steps._client(nurse)
        searching.post(urls[size][report.PATIENT_LIST], {"q": _search_text(steps)})
        clients[size, report.PATIENT_SEARCH] = searching
        print(f"{size:,} patients: {record.cohort[size]}", file=sys.stderr)
    load_at_start = os.getloadavg()
    found: dict[str, dict[int, list[Any]]] = {name: {small: [], large: []} for name in urls[small]}
    for k in range(rounds):
        for size, url in names.items():
            _use(url)
            for name, path in urls[size].items():
                client = clients.get((size, name), clients[size])
                found[name][size].append(pages.measure(client, path, budget_seconds=3))
        print(f"round {k + 1} of {rounds} done", file=sys.stderr)
    load_after_pages = os.getloadavg()
    _use(names[large])
    commands = _commands(large) if with_commands else {}
    machine = steps.machine(wrk_version="(not used)")
    machine.pop("load generator")
    machine.pop("load average at start")  # printed below, at three points of the run
    print("\n".join(f"- {key}: {value}" for key, value in machine.items()))
    print()
    print(_cohorts(record, small, large))
    print()
    print(_table(found, small, large))
    if commands:
        print()
        print(_commands_table(commands))
    print(
        f"\n{time.monotonic() - began:.0f} s; load average {_load(load_at_start)} at the first "
        f"round, {_load(load_after_pages)} after the last, {_load(os.getloadavg())} at the end"
    )


def _database(server: str, suffix: str, *, keep: bool) -> str:
    if keep:
        parts = urlparse(server)
        return urlunparse(parts._replace(path=parts.path + suffix))
    return run._fresh_database(server, suffix=suffix)


def _use(database_url: str) -> None:
    """Point Django's connection at another database of the same server."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = database_url.rsplit("/", 1)[1]


def _nurse(steps: Any) -> Any:
    from django.contrib.auth import get_user_model

    nurse = get_user_model().objects.filter(username="bench-nurse-01").first()
    return nurse or steps.bench_nurses(1)[0][0]


def _search_text(steps: Any) -> str:
    """The typical patient's family name, as `steps.measure_pages` searches."""
    return str(steps.typical_patient().family_name)


def _commands(size: int) -> dict[str, str]:
    """`refresh_review_ranks` and `escalate_flags` (twice), each rolled back afterwards."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import transaction

    from patients.models import CTCDraw
    from patients.roles import ONCOLOGIST

    found: dict[str, str] = {}

    def timed(name: str, *args: str) -> tuple[float, str]:
        out = StringIO()
        print(f"manage.py {name} at {size:,} patients", file=sys.stderr)
        began = time.perf_counter()
        call_command(name, *args, stdout=out, stderr=sys.stderr)
        return time.perf_counter() - began, out.getvalue().strip()

    with transaction.atomic():
        seconds, said = timed("refresh_review_ranks")
        found["refresh_review_ranks"] = f"{seconds:.1f} s ({said})"
        transaction.set_rollback(True)
    with transaction.atomic():
        # The synthetic oncologists own the patients but have no address: give them one.
        group = Group.objects.get(name=ONCOLOGIST)
        for user in get_user_model().objects.filter(username__startswith="syn-oncologist-"):
            user.email, user.is_active = f"{user.username}@bench.invalid", True
            user.save(update_fields=["email", "is_active"])
            user.groups.add(group)
        waiting = CTCDraw.objects.filter(review_rank=0, review_acknowledged=False).count()
        found["high results waiting"] = f"{waiting:,}"
        seconds, said = timed("escalate_flags")
        found["escalate_flags, first run"] = f"{seconds:.1f} s ({said})"
        seconds, said = timed("escalate_flags")
        found["escalate_flags, again at once"] = f"{seconds:.2f} s ({said})"
        transaction.set_rollback(True)
    return found


def _cohorts(record: Any, small: int, large: int) -> str:
    lines = [f"| synthetic cohort | {small:,} patients | {large:,} patients |", "|---|---:|---:|"]
    for name in record.cohort[small]:
        lines.append(
            f"| {name} | {record.cohort[small][name]:,} | {record.cohort[large][name]:,} |"
        )
    return "\n".join(lines)


def _table(found: dict[str, dict[int, list[Any]]], small: int, large: int) -> str:
    lines = [
        f"| request | {small:,} patients (ms) | {large:,} patients (ms) | ratio "
        "(median of rounds) | each round | queries | KiB |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for name, sizes in found.items():
        few, many = sizes[small], sizes[large]
        ratios = [b.median_ms / s.median_ms for s, b in zip(few, many, strict=True)]
        lines.append(
            f"| {name} | {statistics.median(t.median_ms for t in few):,.1f} "
            f"| {statistics.median(t.median_ms for t in many):,.1f} "
            f"| {statistics.median(ratios):.2f}x "
            f"| {' '.join(f'{r:.2f}' for r in ratios)} "
            f"| {few[0].queries} / {many[0].queries} "
            f"| {few[0].kib:,.0f} / {many[0].kib:,.0f} |"
        )
    return "\n".join(lines)


def _commands_table(found: dict[str, str]) -> str:
    lines = ["| command | figure |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in found.items()]
    return "\n".join(lines)


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in averages)


if __name__ == "__main__":
    main()
