"""`python manage.py mllp_listener [--host H] [--port 2575] [--user NAME]`: HL7 v2 over MLLP.

Listens for lab results framed in MLLP, from any number of connections at
once, and answers each message with its ACK on the connection it came in on:
the same receiving code, the same ACKs and the same access-log events as
`POST /api/v1/hl7/oru/`. Results are filed as the lab interface account (the
one `import_hl7` uses) unless `--user` names another. SIGTERM or SIGINT stops
it: it stops listening, closes idle connections, answers any message being
stored, and exits 0. Run it as a service (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from patients import services
from patients.interop.hl7.mllp import DEFAULT_PORT, DEFAULT_WORKERS, Listener
from patients.interop.hl7.receive import LAB_INTERFACE_ACCOUNT


class Command(BaseCommand):
    help = "Receive HL7 v2 ORU^R01 messages over MLLP (TCP), answering each with its ACK."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Address to listen on (default 127.0.0.1: behind a TLS proxy on this "
            "machine; 0.0.0.0 or :: for every interface).",
        )
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="Default 2575.")
        parser.add_argument(
            "--user",
            default=LAB_INTERFACE_ACCOUNT,
            help=f"Who the draws are entered by (default: the '{LAB_INTERFACE_ACCOUNT}' "
            "account, which cannot sign in).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"Messages stored at once, each with a database connection "
            f"(default {DEFAULT_WORKERS}; 1 on SQLite, which has one writer).",
        )
        parser.add_argument(
            "--proxy-protocol",
            action="store_true",
            help="Each connection starts with a PROXY protocol v1 line (nginx stream "
            "`proxy_protocol on`, stunnel `protocol = proxy`): log the lab's address "
            "it names, not the proxy's.",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        user: str,
        workers: int | None,
        proxy_protocol: bool,
        **options: Any,
    ) -> None:
        if workers is not None and workers < 1:
            raise CommandError("--workers must be at least 1.")
        by = services.system_user(user) if user == LAB_INTERFACE_ACCOUNT else _existing(user)
        connections.close_all()  # the workers open their own; this one would sit idle
        listener = Listener(by=by, workers=workers, proxy_protocol=proxy_protocol)
        try:
            asyncio.run(self._run(listener, host, port))
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}") from exc

    async def _run(self, listener: Listener, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, listener.stop)
        await listener.serve(host or None, port, ready=self._ready)

    def _ready(self, addresses: list[Any]) -> None:
        where = ", ".join(f"{a[0]}:{a[1]}" for a in addresses)
        self.stdout.write(f"Listening for MLLP on {where}; SIGTERM or Ctrl-C stops.")
        self.stdout.flush()


def _existing(username: str) -> Any:
    try:
        return get_user_model().objects.get(username=username, is_active=True)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"No active user named {username!r}.") from exc
