"""Server time and query count of pages, measured in-process with Django's test client.

Used by `bench/run.py` inside a configured Django. A request goes through the
whole middleware stack, the view and the template, exactly as under gunicorn,
minus the HTTP parsing. Each figure is the median of several timed requests
after a warm-up; the query count comes from one more request under
`CaptureQueriesContext` (which slows queries down, so it is never timed).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.pairs import time_pairs

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageTime:
    median_ms: float
    runs: int
    queries: int
    status: int
    kib: float  # response body size
    # This process's CPU per request (median): the server's own cost, PostgreSQL's not
    # in it; unlike the wall time it does not grow when other processes share the cores.
    cpu_ms: float = 0.0


@dataclass(frozen=True)
class ChartTimes:
    cold_ms: float
    cached_ms: float
    not_modified_ms: float
    runs: int  # cold draws
    # The cached chart and the 304 are timed in pairs, back to back: `saved_ms` is the
    # median over the pairs of (cached - 304), `cheaper` the share of pairs in which
    # the 304 took less. Two medians of 11 differ by their noise; a paired difference
    # over hundreds of pairs resolves what a 304 saves.
    pairs: int = 0
    saved_ms: float = 0.0
    cheaper: float = 0.0


def measure(
    client: Client,
    url: str,
    *,
    min_runs: int = 5,
    max_runs: int = 25,
    budget_seconds: float = 8.0,
    **headers: Any,
) -> PageTime:
    """Median server time of GET `url` over at least `min_runs` timed requests.

    More requests are timed while the budget lasts, up to `max_runs`: fast
    pages get many runs, a page that takes seconds gets `min_runs`.
    """
    began = time.perf_counter()
    response = _get_ok(client, url, **headers)  # warm-up: connections, templates, caches
    if time.perf_counter() - began > budget_seconds / 2:
        min_runs = 3  # a page that takes seconds: three timed requests, not hours of them
    with CaptureQueriesContext(connection) as queries:
        _get_ok(client, url, **headers)
    # Read now: `captured_queries` slices the connection's log, which the next request clears.
    query_count = len(queries.captured_queries)
    times: list[float] = []
    cpu: list[float] = []
    began = time.perf_counter()
    while len(times) < max_runs and (
        len(times) < min_runs or time.perf_counter() - began < budget_seconds
    ):
        cpu_before = time.process_time()
        times.append(_timed(lambda: client.get(url, **headers)))
        cpu.append(time.process_time() - cpu_before)
    return PageTime(
        median_ms=statistics.median(times) * 1000,
        runs=len(times),
        queries=query_count,
        status=response.status_code,
        kib=len(response.content) / 1024,
        cpu_ms=statistics.median(cpu) * 1000,
    )


def measure_chart(client: Client, url: str, *, runs: int = 9, pairs: int = 301) -> ChartTimes:
    """A chart drawn after emptying the cache (`runs` times), then served from the cache
    and as a 304, in `pairs` pairs.

    A 304 saves only reading the chart from the cache and sending it; both requests
    pay the sign-in, the patient's look-up and the access-log event. So the cached
    request and the 304 are timed back to back, in alternating order (drift and
    the warmth of the one before fall on both alike), and compared pair by pair.
    """
    cold = []
    _get_ok(client, url)  # warm-up: matplotlib's fonts and the first figure
    for _ in range(runs):
        cache.clear()
        cold.append(_timed(lambda: _get_ok(client, url)))
    etag = _get_ok(client, url).headers["ETag"]

    found = time_pairs(
        lambda: _get_ok(client, url),
        lambda: _get_status(client, url, 304, HTTP_IF_NONE_MATCH=etag),
        pairs,
    )
    return ChartTimes(
        cold_ms=statistics.median(cold) * 1000,
        cached_ms=found.first_ms,
        not_modified_ms=found.second_ms,
        runs=runs,
        pairs=pairs,
        saved_ms=found.saved_ms,
        cheaper=found.cheaper,
    )


def profile(client: Client, url: str) -> str:
    """Where one request's time goes (the page was measured, so it is warm): pyinstrument's
    call tree from the view down and the functions with the most time of their own."""
    return profile_call(lambda: _get_ok(client, url), start_at=r"views\.py:")


def profile_call(work: Callable[[], Any], *, start_at: str) -> str:
    """pyinstrument's report on `work`: the call tree from the first frame matching `start_at`."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return _cprofile(work)
    profiler = Profiler(interval=0.001)
    profiler.start()
    work()
    profiler.stop()
    options = {"filter_threshold": 0.02}
    tree = profiler.output_text(unicode=False, color=False, processor_options=options)
    flat = profiler.output_text(unicode=False, color=False, flat=True)
    duration = re.search(r"Duration: ([\d.]+)\s+CPU time: ([\d.]+)", tree)
    head = f"wall {duration[1]} s, CPU {duration[2]} s" if duration else ""
    body = [
        head,
        "",
        "Call tree (frames under 2% hidden):",
        *_subtree(tree, start_at)[:45],
        "",
        "Most time of their own:",
        *_flat_top(flat, 15),
    ]
    return _without_paths("\n".join(body))


def _cprofile(work: Callable[[], Any]) -> str:
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(work)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return "(pyinstrument is not installed: cProfile, top 30 by cumulative time)\n" + (
        _without_paths(out.getvalue())
    )


def _subtree(text: str, pattern: str) -> list[str]:
    """The lines of the first frame matching `pattern` and of the frames below it, dedented."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if re.search(pattern, line)), None)
    if first is None:
        return [line for line in lines if line.strip()]
    column = _time_column(lines[first])
    tree = [lines[first][column:]]
    for line in lines[first + 1 :]:
        if not line.strip() or _time_column(line) <= column:
            break
        tree.append(line[column:])
    return tree


def _time_column(line: str) -> int:
    """Where a call-tree line's time starts (its depth); hidden-frame notes count as deeper."""
    found = re.search(r"\d+\.\d{3} ", line)
    if found is None:
        return len(line) - len(line.lstrip(" |`-")) + 1
    return found.start()


def _flat_top(text: str, count: int) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*\d+\.\d+ ", line)][:count]


def _without_paths(text: str) -> str:
    """No machine's paths in a report that is committed."""
    for prefix in sorted({str(ROOT), sys.prefix, sys.base_prefix}, key=len, reverse=True):
        text = text.replace(prefix + "/", "").replace(prefix, "")
    return text


def _timed(work: Callable[[], Any]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def _get_ok(client: Client, url: str, **headers: Any) -> Any:
    return _get_status(client, url, 200, **headers)


def _get_status(client: Client, url: str, status: int, **headers: Any) -> Any:
    response = client.get(url, **headers)
    if response.status_code != status:
        where = response.headers.get("Location", "")
        raise RuntimeError(
            f"GET {url} answered {response.status_code} {where} (expected {status}): the "
            "benchmark user cannot see the page; check the settings overrides in bench/run.py."
        )
    return response
