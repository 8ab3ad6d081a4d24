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
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 (the path must be set first)

SMALL = 100
# A second page exists only in the large cohort: it is compared with the first at 100.
FIRST_PAGE = {"worklist page 2": "worklist page", "worklist API page 2": "worklist API"}


def main() -> None:
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
