"""gunicorn settings for CTC Track: `gunicorn --config gunicorn.conf.py ctctrack.wsgi`.

Production runs behind a buffering reverse proxy (nginx or the like) that
terminates TLS and holds slow clients, so gunicorn's sync workers only ever see
complete requests from the proxy. Every value can be changed from the
environment without editing this file; `make bench` serves the benchmark with
exactly this file.
"""

from __future__ import annotations

import os


def _cores() -> int:
    # The CPUs this process may run on (a container's CPU set), not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


# Behind the proxy on the same host by default; a container sets BIND=0.0.0.0:8000
# (or PORT, as platforms do) to be reachable from outside itself.
bind = os.getenv("BIND") or f"127.0.0.1:{os.getenv('PORT', '8000')}"

# gunicorn's documented starting point, 2 x cores + 1: a request spends much of
# its time waiting on PostgreSQL (every page commits its access-log event), and
# the extra workers keep the cores busy meanwhile. WEB_CONCURRENCY overrides, as
# gunicorn and hosting platforms expect.
workers = int(os.getenv("WEB_CONCURRENCY", str(2 * _cores() + 1)))
# Sync workers: one request at a time per process, the simplest model that the
# Django ORM and matplotlib are safe in. The proxy buffers, so slow clients cannot
# tie a worker up.
worker_class = "sync"

# Load Django, NumPy, SciPy and matplotlib once in the master and fork: workers
# start in milliseconds and share those pages of memory. Nothing opens a
# database connection at import time, so no connection is shared across a fork.
# (Deploying new code therefore needs a restart, not a HUP.)
preload_app = True

# A request still running after this long is stuck (the slowest page, the PDF
# report, takes well under a second): the worker is killed and replaced rather
# than held forever. The proxy's own timeout should be a little longer.
timeout = int(os.getenv("GUNICORN_TIMEOUT", "30"))
# On a restart or deploy, workers get this long to finish the requests they hold.
graceful_timeout = 30
# Ignored by sync workers (they close each connection); kept for a gthread switch.
keepalive = 5

# Recycle a worker after this many requests (with jitter, so they do not all
# restart at once): a bound on any slow memory growth, at the cost of one fork.
max_requests = int(os.getenv("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = max_requests // 10

# Workers prove they are alive by touching a file every few seconds. In a
# container /tmp is often on an overlay filesystem where that can block for
# seconds; /dev/shm is memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Access log on stdout, for the platform to collect. The path only, never the
# query string (a search `?q=` may be a patient's name or MRN), and no referrer
# or user agent (a referrer carries the previous page's query string).
# Fields: client, time, method, path, status, bytes, duration in milliseconds.
accesslog = os.getenv("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = os.getenv("GUNICORN_LOG_LEVEL", "info")

# Request line and headers: gunicorn's limits, stated so a change is deliberate.
limit_request_line = 4094
limit_request_fields = 100

# No runtime control socket: nothing here uses gunicornc, and two servers on one
# machine would otherwise share the default socket path in the home directory.
control_socket_disable = True
