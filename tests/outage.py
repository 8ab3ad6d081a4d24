"""A database outage for tests: Django's default connection pointed at nothing."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connections


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once closed: nothing listens there


@contextmanager
def unreachable_database(tmp_path: Path) -> Iterator[None]:
    """Django's default connection, pointed at a database that cannot be reached."""
    original = connections["default"]
    broken_settings = copy.deepcopy(original.settings_dict)
    if original.vendor == "sqlite":
        broken_settings["NAME"] = str(tmp_path / "missing-folder" / "db.sqlite3")
    else:
        broken_settings.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    broken = original.__class__(broken_settings, "default")
    connections["default"] = broken
    try:
        yield
    finally:
        broken.close()
        connections["default"] = original
