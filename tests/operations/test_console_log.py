"""The console log follows stderr, so a thread logging late never hits a closed stream."""

from __future__ import annotations

import io
import logging
import sys

import pytest


def test_the_console_log_writes_to_the_stderr_of_the_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, now = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("ctctrack.listener").warning("the listener stopped")
    monkeypatch.setattr(sys, "stderr", now)
    first.close()  # as the test runner closes a test's capture

    logging.getLogger("ctctrack.listener").warning("a message after the swap")

    assert "a message after the swap" in now.getvalue()
    assert "WARNING ctctrack.listener" in now.getvalue()  # through the console handler
