"""The MLLP listener: HL7 v2 lab results over TCP, each answered on its own connection.

`manage.py mllp_listener` runs a `Listener`. python-hl7's asyncio MLLP support
(`hl7.mllp`) reads and writes the blocks; every block is handed whole to
`receive.receive_hl7`, the receiving code of the HTTP endpoint and of
`manage.py import_hl7`, in a worker thread (the ORM is synchronous), and its
ACK is written back on the same connection once the message's transaction has
ended. So a message is stored all or nothing, and an ACK is only ever sent for
what was stored or refused: a lab that gets no ACK sends again, and a message
sent again is "Already recorded, no change".

The sender's address (or the one a PROXY protocol header names, behind a TLS
proxy) is written in the access log with each message's `import` event. The
log says which connection, which message and which ACK code; never what a
message holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import close_old_connections, connection, connections
from django.utils import timezone
from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from ctctrack.middleware import is_database_outage
from patients.interop.hl7 import parse as hl7_in
from patients.interop.hl7.ack import AckCode, ErrorCode, Header, Problem, build_ack
from patients.interop.hl7.receive import (
    MAX_BODY_BYTES,
    ctc_loinc_codes,
    receive_hl7,
    record_import,
    refuse_unavailable,
)

logger = logging.getLogger(__name__)

DEFAULT_PORT = 2575  # IANA's port for HL7 over MLLP
# The largest message accepted: 10 MB (MiB), as the HTTP endpoint's.
MAX_MESSAGE_BYTES = MAX_BODY_BYTES
# Messages stored at once on PostgreSQL (each holds a database connection while it is
# stored). SQLite has one writer: there, one at a time (the others wait their turn
# instead of failing on its lock).
DEFAULT_WORKERS = 4
# How long a stopping listener waits for its worker threads to close their connections.
WORKER_CLOSE_SECONDS = 5.0
# How long a PROXY protocol header may take to arrive after a proxy connects.
PROXY_HEADER_SECONDS = 10.0
PROXY_SIGNATURE = b"PROXY "
NOT_PROCESSED = (
    "CTC Track could not process the message (an internal error): send it again later. "
    "Results already stored are recognised."
)
TOO_LARGE_TEXT = (
    f"Message larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB "
    f"({MAX_MESSAGE_BYTES:,} bytes): not processed. Send it in smaller messages."
)


@dataclass(frozen=True)
class Peer:
    """Who sent a message: the connection's remote end (or the client behind our proxy)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def of(cls, writer: HL7StreamWriter) -> Peer:
        address = writer.get_extra_info("peername") or ("", 0)
        return cls(str(address[0]), int(address[1]))


# --- one message: synchronous, in a worker thread --------------------------------------


def receive_block(block: bytes, *, by: Any, peer: Peer) -> bytes:
    """Receive the messages of one MLLP block (one, or a batch); their ACKs, encoded, for
    one block back.

    Each message is stored all or nothing, in its own transaction, and gets its
    access-log event. If the record cannot be reached (the database restarting),
    each message's ACK is AR, its control ID echoed, saying so: the lab's engine
    sends the message again, and whatever of it was already stored is recognised
    ("Already recorded, no change"). The connection stays open.
    """
    # Around each message as Django does around each request: a connection that failed
    # (the database restarted) or outlived CONN_MAX_AGE is closed, a healthy one is kept
    # for this worker thread's next message (connecting costs more than storing a result).
    close_old_connections()
    try:
        # Outside any transaction: `receive_hl7` stores each message in its own.
        delivery = receive_hl7(block, by=by)
        for receipt in delivery.receipts:
            record_import(receipt, by=by, address=peer.host, via=f"MLLP from {peer}")
    except Exception as exc:  # answered AR and logged (the message withheld): the listener goes on
        if is_database_outage(exc):
            logger.error("MLLP message from %s not processed: database unavailable", peer)
            return refuse_unavailable(block).acks().encode("utf-8")
        logger.exception("MLLP message from %s not processed", peer)
        return _refusal(_header_of(block), ErrorCode.APPLICATION_INTERNAL_ERROR, NOT_PROCESSED)
    finally:
        close_old_connections()
    for receipt in delivery.receipts:
        logger.info("MLLP message %s from %s: %s", receipt.header.control_id, peer, receipt.code)
    return delivery.acks().encode("utf-8")


async def _close_worker_connections(executor: ThreadPoolExecutor, workers: int) -> None:
    """Close the database connections the worker threads keep between messages.

    One task per worker, each waiting for the others, so that every thread runs one.
    """
    barrier = threading.Barrier(workers)

    def close() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=WORKER_CLOSE_SECONDS)
        connections.close_all()

    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(executor, close) for _ in range(workers)))


def _header_of(block: bytes) -> Header:
    """The MSH fields an ACK echoes, when the block has a readable MSH."""
    try:
        text = hl7_in.split_body(block).messages[0]
        tz = timezone.get_default_timezone()
        return hl7_in.parse_message(text, loinc_codes=ctc_loinc_codes(), tz=tz).header
    except Exception:  # an ACK without the sender's control ID is still an answer
        return Header()


def _refusal(header: Header, error: ErrorCode, text: str) -> bytes:
    """An AR for a message that was not processed at all."""
    ack = build_ack(
        header,
        AckCode.REJECT,
        text,
        (Problem("MSH", error, text),),
        control_id=uuid.uuid4().hex[:20].upper(),
        now=timezone.now(),
        tz=timezone.get_default_timezone(),
    )
    return ack.encode("utf-8")


# --- the listener: asyncio ---------------------------------------------------------------


class _TooLarge:
    """What the next block was when it exceeded `MAX_MESSAGE_BYTES` (it has been skipped)."""


class _NotABlock:
    """What the next block was when it did not start with the MLLP start byte."""


class Listener:
    """Accepts MLLP connections until `stop()`; each message is answered with its ACK.

    `by` is the account the results are filed as. With `proxy_protocol`, every
    connection must start with a PROXY protocol v1 line (nginx `proxy_protocol on`,
    stunnel `protocol = proxy`), whose client address is the one logged.
    """

    def __init__(
        self,
        *,
        by: Any,
        workers: int | None = None,
        limit: int = MAX_MESSAGE_BYTES,
        proxy_protocol: bool = False,
    ) -> None:
        self.by = by
        self.limit = limit
        self.proxy_protocol = proxy_protocol
        self._workers = workers or (1 if connection.vendor == "sqlite" else DEFAULT_WORKERS)
        self._stopping = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Stop listening; idle connections close, a message being stored is answered first."""
        self._stopping.set()

    async def serve(
        self, host: str | None, port: int, *, ready: Callable[[list[Any]], None] | None = None
    ) -> None:
        """Listen on `host:port` until `stop()`; `ready` gets the bound socket addresses."""
        executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="mllp")
        server = await start_hl7_server(
            lambda r, w: self._connected(r, w, executor),
            host,
            port,
            limit=self.limit + 1,  # readblock's limit counts the <VT> that starts a block
        )
        addresses = [s.getsockname() for s in server.sockets]
        logger.info("MLLP listener on %s", ", ".join(f"{a[0]}:{a[1]}" for a in addresses))
        if ready is not None:
            ready(addresses)
        try:
            await self._stopping.wait()
        finally:
            server.close()
            self._stopping.set()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()
            await _close_worker_connections(executor, self._workers)
            executor.shutdown(wait=True)
            logger.info("MLLP listener stopped")

    async def _connected(
        self, reader: HL7StreamReader, writer: HL7StreamWriter, executor: ThreadPoolExecutor
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = Peer.of(writer)
        # A lab whose network went away must not hold a connection open for ever.
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            if self.proxy_protocol:
                peer = await _proxied_peer(reader, peer)
            logger.info("MLLP connection from %s", peer)
            await self._converse(reader, writer, executor, peer)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                logger.warning("MLLP connection from %s closed mid-message: not stored", peer)
            else:
                logger.info("MLLP connection from %s closed", peer)
        except (ConnectionError, TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
            logger.warning("MLLP connection from %s ended: %s", peer, type(exc).__name__)
        except Exception:
            logger.exception("MLLP connection from %s failed", peer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._connections.discard(task)

    async def _converse(
        self,
        reader: HL7StreamReader,
        writer: HL7StreamWriter,
        executor: ThreadPoolExecutor,
        peer: Peer,
    ) -> None:
        """Message, ACK, message, ACK... until the sender closes or the listener stops."""
        loop = asyncio.get_running_loop()
        while (block := await self._next_block(reader)) is not None:
            if isinstance(block, _TooLarge):
                logger.warning("MLLP message from %s refused: over the size limit", peer)
                ack = _refusal(Header(), ErrorCode.APPLICATION_INTERNAL_ERROR, TOO_LARGE_TEXT)
            elif isinstance(block, _NotABlock):
                logger.warning("MLLP data from %s refused: not an MLLP block", peer)
                ack = _refusal(
                    Header(),
                    ErrorCode.SEGMENT_SEQUENCE_ERROR,
                    "Not an MLLP block: each message must start with <VT> (0x0B) "
                    "and end with <FS><CR> (0x1C 0x0D).",
                )
            else:
                # Not cancelled by stop(): the message is stored and answered, or not at all.
                receive = partial(receive_block, block, by=self.by, peer=peer)
                ack = await loop.run_in_executor(executor, receive)
            writer.writeblock(ack)
            await writer.drain()

    async def _next_block(self, reader: HL7StreamReader) -> bytes | _TooLarge | _NotABlock | None:
        """The next whole block, or None when the listener stops before one has arrived."""
        read = asyncio.ensure_future(reader.readblock())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not read.done():
            read.cancel()  # a message half-received is dropped: never stored, never answered
            return None
        try:
            return read.result()
        except InvalidBlockError:
            return _NotABlock()
        except ValueError as exc:
            # Over the limit. python-hl7 has dropped what it buffered; when the block's
            # end had not arrived yet, the rest of it is still to come: skip that too.
            if "Separator is found" not in str(exc):
                await _skip_rest_of_block(reader)
            return _TooLarge()


async def _skip_rest_of_block(reader: HL7StreamReader) -> None:
    """Read and drop bytes up to the end of the current block (<FS><CR>)."""
    while True:
        try:
            await reader.readblock()
            return
        except InvalidBlockError:
            return  # the tail of the block: it does not start with <VT>
        except ValueError as exc:
            if "Separator is found" in str(exc):
                return


async def _proxied_peer(reader: HL7StreamReader, proxy: Peer) -> Peer:
    """The client a PROXY protocol v1 line names (`PROXY TCP4 src dst sport dport`)."""

    async def header() -> bytes:
        if await reader.readexactly(len(PROXY_SIGNATURE)) != PROXY_SIGNATURE:
            return b""  # not from our proxy: refused at once
        return PROXY_SIGNATURE + await reader.readuntil(b"\r\n")

    line = await asyncio.wait_for(header(), PROXY_HEADER_SECONDS)
    parts = line.decode("ascii", "replace").split()
    if len(parts) == 6 and parts[0] == "PROXY" and parts[1] in ("TCP4", "TCP6"):
        return Peer(parts[2], int(parts[4]))
    if parts[:2] == ["PROXY", "UNKNOWN"]:
        return proxy  # the proxy's own health check
    raise ValueError(f"no PROXY protocol header from {proxy}")
