"""gunicorn settings for CTC Track: `gunicorn --config gunicorn.conf.py ctctrack.wsgi`.

Production runs behind a buffering reverse proxy (nginx or the like) that
terminates TLS and holds slow clients, so gunicorn's sync workers only ever see
complete requests from the proxy. Every value can be changed from the
environment without editing this file; `make bench` serves the benchmark with
exactly this file.
"""

from __future__ import annotations

import gc
import ipaddress
import os
from typing import Any

from gunicorn.util import parse_address


def _cores() -> int:
    # The CPUs this process may run on (a container's CPU set), not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


# A Unix socket by default, which only processes on this host can open (nginx on the
# same host proxies to it): an app server that anyone on the network can reach lets
# them send their own X-Forwarded-For, which CTCTRACK_TRUSTED_PROXY_COUNT trusts, and so
# forge the address in the access log and dodge the sign-in lockout. BIND names
# another address (nginx on other hosts: this host's private address, behind a
# firewall); PORT alone listens on 127.0.0.1, for local use and tests.
DEFAULT_BIND = "unix:/run/ctctrack/gunicorn.sock"


def _bind() -> str:
    if os.getenv("BIND"):
        return os.environ["BIND"]
    if os.getenv("PORT"):
        return f"127.0.0.1:{os.environ['PORT']}"
    return DEFAULT_BIND


bind = _bind()

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
# restart at once): a bound on any slow memory growth, at the cost of one fork
# (cheap only with `pre_fork` below).
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


# --- the X-Forwarded-For warning ---------------------------------------------------------


def reachable_tcp_addresses(binds: list[str]) -> list[str]:
    """The addresses in `binds` that other machines may reach: TCP, not loopback."""
    return [address for address in binds if not _local_only(address)]


def _local_only(address: str) -> bool:
    parsed = parse_address(address)
    if not isinstance(parsed, tuple):  # a Unix socket or an inherited descriptor
        return True
    host = parsed[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "" (every interface) or a host name: assume reachable
        return False


def forwarding_warning(binds: list[str], proxy_count: int) -> str | None:
    """What to shout at start when a reachable address trusts X-Forwarded-For, or None."""
    reachable = reachable_tcp_addresses(binds)
    if proxy_count <= 0 or not reachable:
        return None
    return (
        f"CTCTRACK_TRUSTED_PROXY_COUNT={proxy_count} and gunicorn listens on "
        f"{', '.join(reachable)}: ANYONE WHO CAN REACH THAT ADDRESS WITHOUT GOING THROUGH "
        "THE PROXY CAN FORGE THEIR CLIENT ADDRESS (X-Forwarded-For) in the access log and "
        "escape the sign-in lockout. Let only the proxy reach it (a firewall), or bind a "
        f"Unix socket ({DEFAULT_BIND}) or 127.0.0.1. See docs/deployment.md."
    )


def _trusted_proxy_count() -> int:
    # As ctctrack/settings.py reads it; a value that is not a number fails there.
    try:
        return int(os.getenv("CTCTRACK_TRUSTED_PROXY_COUNT", "0"))
    except ValueError:
        return 0


def pre_fork(server: Any, worker: Any) -> None:
    """gunicorn's hook in the master before each worker is forked: freeze the heap.

    The preloaded app (Django, NumPy, SciPy, matplotlib) is shared with every
    worker copy-on-write, but the worker's first garbage collections walk those
    objects and write to each one's header, copying their pages: a new worker
    stalled for about half a second. Under load, with workers recycled every
    `max_requests`, that put p99 at 40x p50 (measured with `make bench`'s load
    test: 500 ms against 12 ms; frozen, 21 ms). `gc.freeze()` moves everything
    the master holds out of the collector's sight, as Python's documentation
    advises before a fork without exec.
    """
    gc.freeze()


def on_starting(server: Any) -> None:
    """gunicorn's hook before the master binds: the bind here, or --bind, as given."""
    warning = forwarding_warning(list(server.cfg.bind), _trusted_proxy_count())
    if warning:
        server.log.warning("!" * 72)
        server.log.warning("WARNING: %s", warning)
        server.log.warning("!" * 72)
