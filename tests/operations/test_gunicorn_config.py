"""gunicorn.conf.py: where the app server listens, and the warning when a reachable
address trusts X-Forwarded-For.

The config file is evaluated afresh under each environment (as gunicorn does), and
one real gunicorn proves that the warning is wired to its start.
"""

from __future__ import annotations

import gc
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.paths import ROOT

CONFIG = ROOT / "gunicorn.conf.py"
START_SECONDS = 60


def load_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """gunicorn.conf.py's names, evaluated under exactly this environment."""
    for name in ("BIND", "PORT", "CTCTRACK_TRUSTED_PROXY_COUNT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONFIG))


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, message: str, *args: object) -> None:
        self.lines.append(message % args)


def start(config: dict[str, Any], binds: list[str]) -> list[str]:
    """What on_starting logs for a master bound to `binds`."""
    log = RecordingLog()
    config["on_starting"](SimpleNamespace(cfg=SimpleNamespace(bind=binds), log=log))
    return log.lines


# --- where it listens --------------------------------------------------------------------


def test_by_default_it_listens_on_a_unix_socket(monkeypatch):
    config = load_config(monkeypatch)

    assert config["bind"] == "unix:/run/ctctrack/gunicorn.sock"


def test_bind_names_another_address(monkeypatch):
    assert load_config(monkeypatch, BIND="127.0.0.1:8000")["bind"] == "127.0.0.1:8000"
    assert load_config(monkeypatch, BIND="unix:/srv/x.sock")["bind"] == "unix:/srv/x.sock"


def test_a_port_alone_listens_on_loopback_only(monkeypatch):
    assert load_config(monkeypatch, PORT="8123")["bind"] == "127.0.0.1:8123"


def test_bind_wins_over_port(monkeypatch):
    assert load_config(monkeypatch, BIND="10.0.1.11:8000", PORT="8123")["bind"] == "10.0.1.11:8000"


# --- the warning -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["0.0.0.0:8000", "[::]:8000", ":8000", "10.0.1.11:8000", "app1.example:8000"]
)
def test_a_reachable_tcp_address_with_a_trusted_proxy_is_shouted_about(monkeypatch, address):
    config = load_config(monkeypatch, CTCTRACK_TRUSTED_PROXY_COUNT="1")

    lines = start(config, [address])

    text = " ".join(lines)
    assert "CAN FORGE THEIR CLIENT ADDRESS" in text
    assert address in text
    assert "CTCTRACK_TRUSTED_PROXY_COUNT=1" in text


@pytest.mark.parametrize(
    "address",
    [
        "unix:/run/ctctrack/gunicorn.sock",
        "127.0.0.1:8000",
        "[::1]:8000",
        "localhost:8000",
        "fd://3",
    ],
)
def test_an_address_only_this_host_reaches_is_quiet(monkeypatch, address):
    config = load_config(monkeypatch, CTCTRACK_TRUSTED_PROXY_COUNT="1")

    assert start(config, [address]) == []


def test_without_a_trusted_proxy_a_reachable_address_is_quiet(monkeypatch):
    # X-Forwarded-For is then ignored: nothing a client sends can change the address.
    config = load_config(monkeypatch)

    assert start(config, ["0.0.0.0:8000"]) == []


def test_one_reachable_address_among_several_is_enough(monkeypatch):
    config = load_config(monkeypatch, CTCTRACK_TRUSTED_PROXY_COUNT="2")

    text = " ".join(start(config, ["unix:/run/ctctrack/gunicorn.sock", "0.0.0.0:8000"]))

    assert "0.0.0.0:8000" in text
    assert "gunicorn.sock," not in text  # only the reachable one is named


# --- a real gunicorn ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(log: Path, text: str, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n{content}")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in gunicorn's log within {START_SECONDS} s")


def _gunicorn(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "gunicorn.log"
    clean = {k: v for k, v in os.environ.items() if k not in ("BIND", "PORT")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), *args, "ctctrack.wsgi"],
        cwd=ROOT,
        env={**clean, "DEBUG": "True", "WEB_CONCURRENCY": "1", **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_gunicorn_warns_at_start_for_every_interface_with_a_trusted_proxy(tmp_path):
    # The warning comes before the master binds; the server is stopped as soon as it shows.
    process, log = _gunicorn(
        tmp_path, "--bind", f"0.0.0.0:{_free_port()}", CTCTRACK_TRUSTED_PROXY_COUNT="1"
    )
    try:
        content = _wait_for(log, "CAN FORGE THEIR CLIENT ADDRESS", process)
    finally:
        _stop(process)

    assert "WARNING" in content


def test_gunicorn_on_a_unix_socket_starts_without_the_warning(tmp_path):
    sock = tmp_path / "gunicorn.sock"
    process, log = _gunicorn(tmp_path, CTCTRACK_TRUSTED_PROXY_COUNT="1", BIND=f"unix:{sock}")
    try:
        content = _wait_for(log, "Listening at: unix:", process)
    finally:
        _stop(process)

    assert "FORGE" not in content


# --- forking workers -----------------------------------------------------------------------


def test_the_master_freezes_its_heap_before_forking_a_worker(monkeypatch):
    # A worker's first collections would otherwise copy the preloaded app's pages and
    # stall it for about half a second (worker recycling put p99 at 40x p50).
    config = load_config(monkeypatch)
    gc.unfreeze()
    try:
        config["pre_fork"](SimpleNamespace(), SimpleNamespace())

        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
