"""Two real app servers, one PostgreSQL, one Redis: no state that matters lives in a server.

Two gunicorns (the repo's gunicorn.conf.py, one worker each) serve the test
database on two ports and share one Redis as their cache (CACHE_URL), as two
servers behind a load balancer would. A browser signs in on one and goes on on
the other; a draw added through one changes the chart the other serves.

Needs PostgreSQL (a server process cannot reach SQLite's in-memory test
database) and Redis: CTCTRACK_TEST_REDIS_URL names one (.ci/run starts it),
or else a private redis-server is started when installed.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import redis
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from patients.models import Patient
from tests import builders
from tests.paths import ROOT

PASSWORD = "correct-horse-42"
# Guards against a server that never comes up; not a measure of anything.
START_SECONDS = 90

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="two app servers need a database server: run with DATABASE_URL=postgres://...",
    ),
]


# --- Redis and the servers --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {START_SECONDS} s")


def stop(processes: list[subprocess.Popen], how: signal.Signals = signal.SIGTERM) -> None:
    """Stop processes started in their own sessions, with everything they forked."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        os.killpg(process.pid, how)
    for process in running:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    given = os.getenv("CTCTRACK_TEST_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server is not installed (Debian: apt-get install redis-server), "
            "and CTCTRACK_TEST_REDIS_URL is not set"
        )
    port, folder = free_port(), tmp_path_factory.mktemp("redis")
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(folder)]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_until_listening(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop([process])


def database_url_of_the_test_database() -> str:
    db = connection.settings_dict
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{user}:{password}@{host}:{port}/{db['NAME']}"


@dataclass
class Servers:
    ports: tuple[int, int]
    key_prefix: str
    logs: Path


@pytest.fixture
def servers(redis_url, tmp_path) -> Iterator[Servers]:
    """Two gunicorns on two ports: the same database, the same cache, the same SECRET_KEY."""
    ports = (free_port(), free_port())
    key_prefix = f"two-servers-{secrets.token_hex(4)}"  # a shared Redis may hold older runs
    env = {
        **os.environ,
        "DEBUG": "True",  # plain HTTP and static files without collectstatic
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url_of_the_test_database(),
        "DB_CONN_MAX_AGE": "0",  # nothing left connected when the test database is dropped
        "CACHE_URL": redis_url,
        "CACHE_KEY_PREFIX": key_prefix,
        "CTCTRACK_REQUIRE_MFA": "False",
        "WEB_CONCURRENCY": "1",
    }
    env.pop("DATABASE_REPLICA_URL", None)
    processes = []
    try:
        for port in ports:
            log = (tmp_path / f"gunicorn-{port}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
                    + ["ctctrack.wsgi"],
                    cwd=ROOT,
                    env={**env, "PORT": str(port)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            wait_until_listening(port, process, f"gunicorn on port {port}")
        # A worker imports the views (matplotlib, SciPy) at its first request: both at once.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda port: Browser().get(port, "/accounts/login/"), ports))
        yield Servers(ports=ports, key_prefix=key_prefix, logs=tmp_path)
    finally:
        stop(processes, signal.SIGINT)  # gunicorn's quick shutdown: nothing is in flight


# --- a browser that talks to either server -----------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Browser:
    """One browser behind a load balancer: one cookie jar, whichever server answers."""

    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, port: int, method: str, path: str, form: dict | None = None) -> Answer:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            conn.close()
        for line in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(line).items():
                self.cookies[name] = morsel.value
        return answer

    def get(self, port: int, path: str) -> Answer:
        return self.request(port, "GET", path)

    def submit(self, port: int, path: str, fields: dict[str, str]) -> Answer:
        """GET the form, then POST it with its CSRF token, as a browser does."""
        page = self.get(port, path)
        assert page.status == 200, f"GET {path} on {port}: {page.status}"
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, f"no CSRF token in the form at {path}"
        return self.request(port, "POST", path, {**fields, "csrfmiddlewaretoken": token[1]})


# --- the test ---------------------------------------------------------------------------


@pytest.fixture
def charted(oncologist) -> Patient:
    # A hash the servers' own hasher reads (the suite hashes with MD5, which they do not know).
    hasher = PBKDF2PasswordHasher()
    oncologist.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    oncologist.save(update_fields=["password"])
    patient = builders.patient(oncologist, family_name="Twoservers")
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=7)
    return patient


def test_a_login_and_a_new_draw_on_one_server_hold_on_the_other(servers, charted, redis_url):
    a, b = servers.ports
    browser = Browser()
    page, chart = f"/patients/{charted.pk}/", f"/patients/{charted.pk}/chart.svg"

    signed_in = browser.submit(a, "/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert signed_in.status == 302 and signed_in.headers["Location"] == "/"

    # B knows the session A started: the patient page, not the login page.
    before = browser.get(b, page)
    assert before.status == 200, before.headers.get("Location")
    assert "Twoservers" in before.text and "Latest CTC count 7 CTC/7.5 mL" in before.text

    # B draws the chart once into the shared cache; both servers then serve that copy.
    first, again, from_a = browser.get(b, chart), browser.get(b, chart), browser.get(a, chart)
    assert first.status == again.status == from_a.status == 200
    assert first.headers["ETag"] == again.headers["ETag"] == from_a.headers["ETag"]
    assert first.body == again.body == from_a.body
    cached = redis.Redis.from_url(redis_url).keys(f"{servers.key_prefix}:*chart:*")
    assert cached, "the chart is not in the shared cache"

    added = browser.submit(
        a,
        f"/patients/{charted.pk}/draws/new/",
        {"drawn_at": "2026-01-23T09:00", "blood_volume_ml": "7.5", "status": "resulted"}
        | {"ctc_count": "42"},
    )
    assert added.status == 302, added.text[:2000]

    after, after_page = browser.get(b, chart), browser.get(b, page)
    assert after.status == 200
    assert after.headers["ETag"] != first.headers["ETag"]
    assert after.body != first.body
    assert "Latest CTC count 42 CTC/7.5 mL" in after_page.text
    assert "2 draws" in after_page.text
