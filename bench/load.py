"""HTTP load on the production server: gunicorn with the repo's gunicorn.conf.py, and wrk.

Used by `bench/run.py`. Everything stays on this machine: the server listens on
127.0.0.1 only, wrk runs for a fixed time and stops by itself. Nurses sign in
through the login form like a browser (so every middleware, the session and
the access log are in the path); wrk then sends their session cookies, one
nurse per request in turn, and counts every answer that is not 200.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.pairs import time_pairs

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
# A page that has not answered in 10 s has failed the nurse waiting for it (gunicorn's
# own limit, 30 s, is for requests that are stuck).
TIMEOUT_SECONDS = 10
WRK_INSTALL_HINT = "Install wrk (Debian and Ubuntu: apt-get install wrk; macOS: brew install wrk)."


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors, timeouts, and answers other than 200
    error_detail: str
    unanswered: int = 0  # requests still waiting when the run ended
    server_cpu_seconds: float = 0.0  # gunicorn's master and workers, during the run
    machine_busy: float = 0.0  # share of all CPUs busy during the run, whoever used them

    @property
    def cpu_ms_per_request(self) -> float | None:
        """Server CPU per answered request: a cost that does not drift with the machine's load."""
        return self.server_cpu_seconds * 1000 / self.requests if self.requests else None


@dataclass(frozen=True)
class ChartPairs:
    """A chart over HTTP, served from the cache and as a 304, timed in back-to-back pairs."""

    pairs: int
    cached_ms: float  # median
    not_modified_ms: float  # median
    saved_ms: float  # median over the pairs of (cached - 304)
    cheaper: float  # share of the pairs in which the 304 took less
    body_kib: float  # what the cached answer sends and the 304 does not


# --- wrk --------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk's path; installed with apt-get when missing and this is Debian as root."""
    found = _installed("wrk", "wrk")
    if not found:
        sys.exit(f"wrk, the HTTP load generator, is missing. {WRK_INSTALL_HINT}")
    return found


def _installed(command: str, package: str) -> str | None:
    """The command's path, the Debian package installed first when it is missing and
    this is Debian as root; None when it is still missing."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() == 0 and Path("/etc/debian_version").exists():
        print(f"Installing {package} (apt-get install {package})...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)
        found = shutil.which(command)
    return found


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()


# Rotates paths and cookies per request, counts non-200 answers per thread, and
# prints one JSON line at the end. Every request says "Connection: close", as the
# reverse proxy in front of gunicorn does (nginx speaks HTTP/1.0 to upstreams by
# default): sync workers close every connection, and wrk, which otherwise writes
# its next request into the closing one, would stall for a second per request.
WRK_SCRIPT = """
local paths = {%(paths)s}
local cookies = {%(cookies)s}
local threads = {}
counter = 0
bad = 0
sent = 0
answered = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counter = math.random(1, 1000)
end

function request()
  counter = counter + 1
  sent = sent + 1
  local headers = {["Connection"] = "close"}
  if #cookies > 0 then headers["Cookie"] = cookies[(counter %% #cookies) + 1] end
  return wrk.format("GET", paths[(counter %% #paths) + 1], headers)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local unexpected, unanswered = 0, 0
  for _, thread in ipairs(threads) do
    unexpected = unexpected + thread:get("bad")
    unanswered = unanswered + thread:get("sent") - thread:get("answered")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "unexpected": %%d, "unanswered": %%d, "p50_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    unexpected, unanswered, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def run_wrk(
    wrk: str,
    base_url: str,
    paths: Sequence[str],
    *,
    cookies: Sequence[str] = (),
    connections: int = 64,
    seconds: int = 30,
    threads: int = 2,
) -> LoadResult:
    """`connections` connections for `seconds` seconds; an answer that took longer than
    `TIMEOUT_SECONDS` is a timeout (wrk leaves out requests still waiting at the end)."""
    lua = WRK_SCRIPT % {
        "paths": ", ".join(_lua_string(p) for p in paths),
        "cookies": ", ".join(_lua_string(c) for c in cookies),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        out = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
            + ["--timeout", f"{TIMEOUT_SECONDS}s"]
            + ["-s", script.name, base_url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 120,
        )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return _load_result(found)


def run_wrk_on(server: Server, wrk: str, paths: Sequence[str], **options: Any) -> LoadResult:
    """`run_wrk` against `server`, with the CPU the server and the machine used meanwhile."""
    cpu_before, busy_before = server.cpu_seconds(), _machine_ticks()
    result = run_wrk(wrk, server.base_url, paths, **options)
    cpu, (busy, total) = server.cpu_seconds() - cpu_before, _machine_ticks(busy_before)
    return replace(result, server_cpu_seconds=cpu, machine_busy=busy / total if total else 0.0)


def _machine_ticks(before: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, minus `before`."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle - before[0], total - before[1]


def _load_result(found: dict[str, int]) -> LoadResult:
    kinds = ["connect", "read", "write", "timeout"]
    # wrk counts 4xx/5xx as "status" errors; `unexpected` counts every answer but 200
    # (a redirect to the login page would otherwise pass as a fast success).
    errors = sum(found[k] for k in kinds) + found["unexpected"]
    detail = ", ".join(f"{k} {found[k]}" for k in [*kinds, "unexpected"] if found[k])
    seconds = found["duration_us"] / 1e6
    return LoadResult(
        requests=found["requests"],
        seconds=seconds,
        rps=found["requests"] / seconds,
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        max_ms=found["max_us"] / 1000,
        errors=errors,
        error_detail=detail or "none",
        unanswered=found["unanswered"],
    )


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- gunicorn ------------------------------------------------------------------------------


class Server:
    """gunicorn with the repo's gunicorn.conf.py on a free port of 127.0.0.1."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.base_url = f"http://{self.host}:{self.port}"
        self.env = {**env, "BIND": f"{self.host}:{self.port}"}
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(GUNICORN), "--config", str(ROOT / "gunicorn.conf.py"), "ctctrack.wsgi"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)  # graceful: workers finish what they hold
        try:
            self.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def _wait_until_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_path}")
            try:
                status, headers, _ = self.get("/accounts/login/")
            except OSError:
                status, headers = 0, {}
            if status == 200 and headers.get("Server", "").startswith("gunicorn"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """CPU used so far by the master, its live workers and the workers it has reaped."""
        assert self.process is not None
        master = _proc_times(self.process.pid)
        seconds = sum(master)  # utime, stime, and the reaped children's cutime, cstime
        for child in children(self.process.pid):
            seconds += sum(_proc_times(child)[:2])
        return seconds

    def get(self, path: str, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
        return self._request("GET", path, headers={"Cookie": cookie} if cookie else {})

    def _request(
        self, method: str, path: str, *, headers: dict[str, str], body: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            cookies = "; ".join(
                value.split(";", 1)[0]
                for name, value in response.getheaders()
                if name.lower() == "set-cookie"
            )
            return (
                response.status,
                {"cookies": cookies, **dict(response.getheaders())},
                (response.read()),
            )
        finally:
            conn.close()

    def chart_pairs(self, path: str, cookie: str, *, pairs: int) -> ChartPairs:
        """GET `path` (a chart, already in the cache) with and without its ETag, `pairs`
        times each, back to back in alternating order, as a browser that has the chart and
        one that has not: what the 304 saves is the pair's difference."""
        status, headers, body = self.get(path, cookie)
        if status != 200 or "ETag" not in headers:
            raise RuntimeError(f"GET {path} answered {status} without an ETag.")
        plain = {"Cookie": cookie}
        conditional = {**plain, "If-None-Match": headers["ETag"]}

        def get(expected: int, sent: dict[str, str]) -> None:
            status = self._request("GET", path, headers=sent)[0]
            if status != expected:
                raise RuntimeError(f"GET {path} answered {status} (expected {expected}).")

        found = time_pairs(lambda: get(200, plain), lambda: get(304, conditional), pairs)
        return ChartPairs(
            pairs=pairs,
            cached_ms=found.first_ms,
            not_modified_ms=found.second_ms,
            saved_ms=found.saved_ms,
            cheaper=found.cheaper,
            body_kib=len(body) / 1024,
        )

    def sign_in(self, username: str, password: str) -> str:
        """A session cookie for `username`, signed in through the login form."""
        status, headers, body = self.get("/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        if status != 200 or token is None:
            raise RuntimeError(f"The login page answered {status} without a CSRF token.")
        form = {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": html.unescape(token.group(1).decode()),
        }
        status, answer, _ = self._request(
            "POST",
            "/accounts/login/",
            headers={
                "Cookie": headers["cookies"],
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=urlencode(form),
        )
        cookie = _merged(headers["cookies"], answer["cookies"])
        # The patient list proves the session works and stays fast whatever the cohort's size.
        if status != 302 or self.get("/patients/", cookie)[0] != 200:
            raise RuntimeError(
                f"Signing in {username} answered {status}: the patient list is not reachable "
                "with the session (MFA or HTTPS redirect on? see the overrides in bench/run.py)."
            )
        return cookie


def _proc_times(pid: int) -> list[float]:
    """utime, stime, cutime, cstime of a process, in seconds (0 if it has just exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return [0.0] * 4
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (name)"
    tick = os.sysconf("SC_CLK_TCK")
    return [int(x) / tick for x in fields[11:15]]


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (gunicorn's workers, of its master)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _merged(*cookie_headers: str) -> str:
    """One Cookie header from several, a later value of a cookie replacing an earlier one."""
    jar: dict[str, str] = {}
    for header in cookie_headers:
        for pair in filter(None, (p.strip() for p in header.split(";"))):
            name, _, value = pair.partition("=")
            jar[name] = value
    return "; ".join(f"{name}={value}" for name, value in jar.items())


@contextmanager
def shared_cache() -> Iterator[str]:
    """A Redis all the load test's workers share, as on a deployment with several workers
    (docs/deployment.md, CACHE_URL); installed as wrk is when missing, and "" (each
    worker's own memory, which the report then says) where it cannot be.

    With each worker's own memory cache, every worker would draw each patient's chart and
    render each worklist row once more during the run, and the figures would measure
    that rather than the pages. Our own instance on a free loopback port, in memory only,
    stopped afterwards.
    """
    server = _installed("redis-server", "redis-server")
    if server is None:
        yield ""
        return
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ctctrack-bench-redis-") as folder:
        process = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("redis-server did not start for the load test") from None
                    time.sleep(0.2)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
