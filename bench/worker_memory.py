"""How a gunicorn worker's memory grows with the requests it serves: is `max_requests` needed?

Run from the project root against a database holding a cohort (`manage.py
generate_cohort`; `make bench` leaves one, `<name>_bench_cohort`), with
DATABASE_URL set:

    python bench/worker_memory.py [requests] [--local-cache]

Starts gunicorn with the repo's gunicorn.conf.py, one worker and recycling off
(`GUNICORN_MAX_REQUESTS=0`), production settings on 127.0.0.1, its cache a Redis
of its own as in production (`CACHE_URL`; `--local-cache`: the worker's own
memory, as a single-worker deployment without Redis has). A nurse signs in
through the login form, then `requests` requests go out in a clinic's mix, ten
at a time: three patient pages, two worklist pages, the results to review, the
patient list, the worklist API, an SVG and a PNG chart, the patient pages and
charts walking through the cohort's first 500 patients (so charts are drawn
cold, as each patient's first chart of the day is, and the cache fills up).
The worker's resident memory (RSS, and the part it does not share with the
master after the fork, USS) is read from /proc every `STEP` requests.

Prints the samples and the growth per 1,000 requests over the second half,
after the caches and the interpreter have warmed up. Nothing is written.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STEP = 500
PATIENTS = 500
MiB = 1024 * 1024


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctctrack.settings")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    total = int(args[0]) if args else 10_000
    local = "--local-cache" in sys.argv
    env = {
        **os.environ,
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "CTCTRACK_REQUIRE_MFA": "False",
        "EMAIL_URL": "memory://",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_MAX_REQUESTS": "0",
    }
    os.environ.update({k: env[k] for k in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")})
    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.urls import reverse

    from bench import load
    from patients.models import Patient
    from patients.roles import NURSE

    password = secrets.token_urlsafe(16)
    nurse, _ = get_user_model().objects.get_or_create(username="bench-memory-nurse")
    nurse.set_password(password)
    nurse.save()
    nurse.groups.add(Group.objects.get(name=NURSE))
    ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True)[:PATIENTS])

    def mix(k: int) -> list[str]:
        a, b, c = (ids[(3 * k + j) % len(ids)] for j in range(3))
        return [
            reverse("patients:detail", args=[a]),
            reverse("patients:worklist"),
            reverse("patients:detail", args=[b]),
            reverse("patients:results"),
            reverse("patients:chart-svg", args=[a]),
            reverse("patients:list"),
            reverse("patients:detail", args=[c]),
            reverse("api:worklist"),
            reverse("patients:worklist") + "?page=2",
            reverse("patients:chart-png", args=[b]),
        ]

    with load.shared_cache() as cache_url:
        if cache_url and not local:
            env["CACHE_URL"] = cache_url
        where = "the worker's own memory" if local or not cache_url else "Redis"
        with load.Server(env, Path(tempfile.mkdtemp(prefix="ctctrack-memory-"))) as server:
            assert server.process is not None
            (worker,) = load.children(server.process.pid)
            cookie = server.sign_in(nurse.get_username(), password)
            print(f"{total:,} requests, one worker (pid {worker}), cache: {where}")
            print(f"{'requests':>9} {'RSS MiB':>8} {'USS MiB':>8} {'seconds':>8}")
            samples = [(0, *_memory(worker))]
            print(f"{0:>9,} {samples[0][1] / MiB:>8.1f} {samples[0][2] / MiB:>8.1f}")
            began, sent, k = time.monotonic(), 0, 0
            while sent < total:
                for path in mix(k):
                    status = server.get(path, cookie)[0]
                    if status != 200:
                        raise RuntimeError(f"GET {path} answered {status}")
                    sent += 1
                    if sent % STEP == 0:
                        samples.append((sent, *_memory(worker)))
                        print(
                            f"{sent:>9,} {samples[-1][1] / MiB:>8.1f} "
                            f"{samples[-1][2] / MiB:>8.1f} {time.monotonic() - began:>8.0f}"
                        )
                k += 1
            if load.children(server.process.pid) != [worker]:
                print("The worker was replaced during the run: the figures are not one worker's.")
    half = [s for s in samples if s[0] >= total // 2]
    if len(half) >= 2:
        (n0, rss0, uss0), (n1, rss1, uss1) = half[0], half[-1]
        per = 1000 / (n1 - n0)
        print(
            f"Second half ({n0:,} to {n1:,} requests): RSS {(rss1 - rss0) * per / 1024:+.0f} KiB "
            f"and USS {(uss1 - uss0) * per / 1024:+.0f} KiB per 1,000 requests."
        )


def _memory(pid: int) -> tuple[int, int]:
    """Resident bytes, and of them those not shared with another process (USS)."""
    rss = uss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "Rss":
            rss = int(value.split()[0]) * 1024
        elif name in ("Private_Clean", "Private_Dirty"):
            uss += int(value.split()[0]) * 1024
    return rss, uss


if __name__ == "__main__":
    main()
