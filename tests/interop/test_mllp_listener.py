"""`manage.py mllp_listener`: HL7 v2 lab results over MLLP, on a real loopback socket.

The listener runs in a thread with its own event loop (its workers store the
messages in threads of their own, against the test database), or as the real
command in a subprocess for the signals. The clients are python-hl7's own:
its asyncio MLLP client, and the `mllp_send` script it installs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.backends.signals import connection_created
from hl7.mllp import open_hl7_connection

from patients import services
from patients.interop.hl7.mllp import MAX_MESSAGE_BYTES, Listener
from patients.interop.hl7.receive import LAB_INTERFACE_ACCOUNT
from patients.models import AccessAction, AccessEvent, CTCDraw
from tests.paths import DATA, ROOT

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = (DATA / "hl7" / "oru_r01_final.hl7").read_bytes().strip(b"\r\n") + b"\r"
CORRECTED = (DATA / "hl7" / "oru_r01_corrected.hl7").read_bytes().strip(b"\r\n") + b"\r"
START, END = b"\x0b", b"\x1c\r"
SECONDS = 60  # generous: the machine is shared; a hang fails the test instead of blocking it


def _run_apart(coroutine):
    """`asyncio.run` in a thread of its own: the browser tests' Playwright keeps an event
    loop running in the main thread for the whole session, where asyncio.run refuses."""
    return _call_apart(asyncio.run, coroutine)


def _call_apart(function, *args):
    """`function(*args)` in a thread with no event loop running, its error re-raised here."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = function(*args)
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _message(number: int) -> bytes:
    """The final-result sample as message `number`: its own control ID and accession."""
    return FINAL.replace(b"CL260302-0001", b"CL-%04d" % number).replace(
        b"CS-26-0101", b"CS-26-%04d" % number
    )


def _padded(size: int) -> bytes:
    """The final-result sample grown to `size` bytes by its free-text OBX (not kept)."""
    note = b"Unfavourable at or above 5 CTC/7.5 mL (breast)"
    grow = size - len(FINAL)
    assert grow > 0
    return FINAL.replace(note, note + b"x" * grow)


def _segments(answer: bytes) -> list[list[str]]:
    text = answer.decode("utf-8").replace("\x0b", "").replace("\x1c", "")
    return [segment.split("|") for segment in text.split("\r") if segment]


def _acks(answer: bytes) -> list[tuple[str, ...]]:
    """(MSA-1, MSA-2, MSA-3) of each ACK in an answer."""
    return [tuple(s[1:4]) for s in _segments(answer) if s[0] == "MSA"]


def _errs(answer: bytes) -> list[tuple[str, ...]]:
    """(ERR-2 location, ERR-3 code, ERR-8 text) of each ERR segment."""
    return [(s[2], s[3].split("^")[0], s[8]) for s in _segments(answer) if s[0] == "ERR"]


async def _converse(port: int, *messages: bytes) -> list[bytes]:
    """Send each message on one connection, reading its answer before the next."""
    reader, writer = await open_hl7_connection("127.0.0.1", port, limit=2 * MAX_MESSAGE_BYTES)
    answers = []
    try:
        for message in messages:
            writer.writeblock(message)
            await writer.drain()
            answers.append(await asyncio.wait_for(reader.readblock(), SECONDS))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


def _send(port: int, *messages: bytes) -> list[bytes]:
    return _run_apart(_converse(port, *messages))


@dataclass
class Running:
    listener: Listener
    port: int
    loop: asyncio.AbstractEventLoop


@pytest.fixture
def lab_account(transactional_db):
    return services.system_user(LAB_INTERFACE_ACCOUNT)


@pytest.fixture
def mllp(lab_account) -> Iterator[Running]:
    with _running(Listener(by=lab_account)) as running:
        yield running


@contextmanager
def _running(listener: Listener) -> Iterator[Running]:
    """The listener on a free loopback port, run by a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    bound: list[int] = []
    started = threading.Event()

    def ready(addresses: list) -> None:
        bound.append(addresses[0][1])
        started.set()

    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(listener.serve("127.0.0.1", 0, ready=ready),),
        daemon=True,
    )
    thread.start()
    assert started.wait(SECONDS), "the listener did not start"
    try:
        yield Running(listener, bound[0], loop)
    finally:
        loop.call_soon_threadsafe(listener.stop)
        thread.join(SECONDS)
        assert not thread.is_alive(), "the listener did not stop"
        loop.close()


# --- messages and their ACKs ------------------------------------------------------------


def test_it_files_a_result_and_answers_aa_on_the_same_connection(mllp, patient, lab_account):
    (answer,) = _send(mllp.port, FINAL)

    assert _acks(answer) == [
        (
            "AA",
            "CL260302-0001",
            "Recorded: accession CS-26-0101; 2 other results not kept (not CTC counts)",
        )
    ]
    draw = CTCDraw.objects.get()
    assert (draw.patient, draw.accession, draw.ctc_count) == (patient, "CS-26-0101", 7)
    assert draw.entered_by == lab_account


def test_it_answers_each_message_of_a_connection_in_turn(mllp, patient):
    first, second = _send(mllp.port, FINAL, CORRECTED)

    assert _acks(first)[0][:2] == ("AA", "CL260302-0001")
    assert _acks(second)[0][0] == "AA"
    assert _acks(second)[0][1] != "CL260302-0001"
    assert CTCDraw.objects.count() == 1
    assert CTCDraw.objects.get().history.count() == 2  # recorded, then corrected


def test_a_worker_keeps_its_database_connection_between_messages_and_closes_it_on_stop(
    lab_account, patient
):
    opened: list[Any] = []

    def created(sender: Any, connection: Any, **kwargs: Any) -> None:
        if threading.current_thread().name.startswith("mllp"):
            opened.append(connection)

    connection_created.connect(created)
    try:
        with _running(Listener(by=lab_account, workers=1)) as running:
            answers = _send(running.port, _message(1), _message(2), _message(3))
    finally:
        connection_created.disconnect(created)

    assert [_acks(a)[0][0] for a in answers] == ["AA", "AA", "AA"]
    assert len(opened) == 1  # connecting once costs more than storing a result
    if connection.vendor != "sqlite":  # Django never closes SQLite's in-memory test database
        assert opened[0].connection is None  # closed when the listener stopped


@pytest.mark.parametrize("sample", ["oru_r01_unknown_mrn.hl7", "adt_a01.hl7", "malformed.hl7"])
def test_it_refuses_what_the_endpoint_refuses_in_the_same_words(
    mllp, patient, api, oncologist, sample
):
    message = (DATA / "hl7" / sample).read_bytes()
    api.force_authenticate(oncologist)

    (answer,) = _send(mllp.port, message)
    endpoint = api.generic("POST", "/api/v1/hl7/oru/", data=message, content_type="text/plain")

    assert _acks(answer)[0][0] in ("AE", "AR")
    assert _acks(answer) == _acks(endpoint.content)
    assert _errs(answer) == _errs(endpoint.content)
    assert not CTCDraw.objects.exists()


def test_its_log_names_connections_and_outcomes_but_no_patient(mllp, patient, caplog):
    with caplog.at_level(logging.INFO, logger="patients.interop.hl7.mllp"):
        _send(mllp.port, FINAL)
        _send(mllp.port, (DATA / "hl7" / "oru_r01_unknown_mrn.hl7").read_bytes())

    lines = [r.getMessage() for r in caplog.records if r.name == "patients.interop.hl7.mllp"]
    assert any(line.startswith("MLLP connection from 127.0.0.1:") for line in lines)
    assert any(
        "MLLP message CL260302-0001 from 127.0.0.1:" in line and line.endswith(": AA")
        for line in lines
    )
    assert any(line.endswith(": AE") for line in lines)
    logged = "\n".join(lines)
    for phi in ("MRN0001", "MRN9999", "Doe", "Jane", "19600517", "CS-26-0101"):
        assert phi not in logged


def test_it_records_the_senders_address_in_the_access_log(mllp, patient, lab_account):
    _send(mllp.port, FINAL)

    (event,) = AccessEvent.objects.filter(action=AccessAction.IMPORT)
    assert (event.user, event.patient, event.client_address) == (lab_account, patient, "127.0.0.1")
    assert event.target.startswith("HL7 CL260302-0001: AA (MLLP from 127.0.0.1:")


def test_it_serves_several_clients_at_once(mllp, patient):
    async def together() -> list[list[bytes]]:
        return await asyncio.gather(*(_converse(mllp.port, _message(n)) for n in range(8)))

    answers = _run_apart(together())

    assert sorted(_acks(a)[0][:2] for (a,) in answers) == [("AA", f"CL-{n:04d}") for n in range(8)]
    assert sorted(CTCDraw.objects.values_list("accession", flat=True)) == [
        f"CS-26-{n:04d}" for n in range(8)
    ]


def test_the_same_message_from_two_clients_at_once_is_filed_once(mllp, patient):
    async def together() -> list[list[bytes]]:
        return await asyncio.gather(*(_converse(mllp.port, FINAL) for _ in range(2)))

    answers = _run_apart(together())

    assert CTCDraw.objects.count() == 1
    texts = sorted(_acks(a)[0][2] for (a,) in answers)
    assert texts[1].startswith("Recorded: accession CS-26-0101")
    # The other was stored first, or at the same moment: no change, or "send it again".
    assert texts[0].startswith(("Already recorded", "A result with the same accession"))


def test_while_the_database_is_unreachable_messages_are_refused_then_filed(mllp, patient, tmp_path):
    (refused,) = _send_while_unreachable(mllp.port, tmp_path, FINAL)

    (again,) = _send(mllp.port, FINAL)  # the lab's engine sends it again

    ((code, control_id, text),) = _acks(refused)
    assert (code, control_id) == ("AR", "CL260302-0001")
    assert text == (
        "The record could not be reached (database unavailable): send the message again "
        "later. A result already stored is recognised and never filed twice."
    )
    assert _acks(again)[0][:2] == ("AA", "CL260302-0001")
    assert CTCDraw.objects.get().accession == "CS-26-0101"


def _send_while_unreachable(port: int, tmp_path: Path, *messages: bytes) -> list[bytes]:
    with _database_unreachable(tmp_path):
        return _send(port, *messages)


@contextmanager
def _database_unreachable(tmp_path: Path) -> Iterator[None]:
    """Every new connection to the database fails (the listener opens one per
    message), as during a database restart."""
    database = connections.settings["default"]  # the settings every thread connects with
    original = dict(database)
    if connection.vendor == "sqlite":
        database["NAME"] = str(tmp_path / "missing-folder" / "db.sqlite3")
    else:
        database["PORT"] = str(_free_port())  # nothing listens there
    try:
        yield
    finally:
        database.update(original)


def test_after_an_outage_the_same_connection_takes_the_message_sent_again(mllp, patient, tmp_path):
    async def converse() -> tuple[bytes, bytes]:
        reader, writer = await open_hl7_connection("127.0.0.1", mllp.port)
        try:
            with _database_unreachable(tmp_path):
                writer.writeblock(FINAL)
                refused = await asyncio.wait_for(reader.readblock(), SECONDS)
            writer.writeblock(FINAL)  # the database is back: sent again, same connection
            again = await asyncio.wait_for(reader.readblock(), SECONDS)
        finally:
            writer.close()
            await writer.wait_closed()
        return refused, again

    refused, again = _run_apart(converse())

    assert _acks(refused)[0][:2] == ("AR", "CL260302-0001")
    assert _acks(again)[0][:2] == ("AA", "CL260302-0001")
    assert CTCDraw.objects.get().accession == "CS-26-0101"


# --- broken connections, sizes ---------------------------------------------------------


def test_a_client_that_disconnects_mid_message_stores_nothing(mllp, patient):
    with socket.create_connection(("127.0.0.1", mllp.port), timeout=SECONDS) as client:
        client.sendall(START + _message(1)[:-40])  # all but the end of the last segment
    with socket.create_connection(("127.0.0.1", mllp.port), timeout=SECONDS) as client:
        client.sendall(START + _message(2))  # whole, but never the end of block

    (answer,) = _send(mllp.port, _message(3))  # and the listener still serves

    assert _acks(answer)[0][0] == "AA"
    assert list(CTCDraw.objects.values_list("accession", flat=True)) == ["CS-26-0003"]


def test_it_accepts_a_10_mb_message(mllp, patient):
    message = _padded(MAX_MESSAGE_BYTES)

    (answer,) = _send(mllp.port, message)

    assert len(message) == 10 * 1024 * 1024
    assert _acks(answer)[0][:2] == ("AA", "CL260302-0001")
    assert CTCDraw.objects.get().accession == "CS-26-0101"


def test_a_larger_message_is_refused_stating_the_limit_and_the_connection_goes_on(mllp, patient):
    too_large, after = _send(mllp.port, _padded(MAX_MESSAGE_BYTES + 1), _message(2))

    ((code, _, text),) = _acks(too_large)
    assert code == "AR"
    assert "larger than 10 MB (10,485,760 bytes)" in text
    assert _acks(after)[0][:2] == ("AA", "CL-0002")
    assert list(CTCDraw.objects.values_list("accession", flat=True)) == ["CS-26-0002"]


def test_data_without_mllp_framing_is_refused_and_the_connection_goes_on(mllp, patient):
    with socket.create_connection(("127.0.0.1", mllp.port), timeout=SECONDS) as client:
        client.sendall(_message(1) + END + START + _message(2) + END)
        answers = _read_blocks(client, 2)

    assert _acks(answers[0])[0][0] == "AR"
    assert "Not an MLLP block" in _acks(answers[0])[0][2]
    assert _acks(answers[1])[0][:2] == ("AA", "CL-0002")
    assert list(CTCDraw.objects.values_list("accession", flat=True)) == ["CS-26-0002"]


def _read_blocks(client: socket.socket, count: int) -> list[bytes]:
    received = b""
    while received.count(END) < count:
        chunk = client.recv(65536)
        assert chunk, "the listener closed the connection"
        received += chunk
    return [block.lstrip(START) for block in received.split(END)[:count]]


# --- behind a TLS proxy -----------------------------------------------------------------


@pytest.fixture
def proxied(lab_account) -> Iterator[Running]:
    """A listener behind a proxy that sends the PROXY protocol (nginx, stunnel)."""
    with _running(Listener(by=lab_account, proxy_protocol=True)) as running:
        yield running


def test_behind_a_proxy_the_access_log_has_the_labs_address(proxied, patient):
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=SECONDS) as client:
        client.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40123 2575\r\n" + START + FINAL + END)
        (answer,) = _read_blocks(client, 1)

    assert _acks(answer)[0][0] == "AA"
    event = AccessEvent.objects.get(action=AccessAction.IMPORT)
    assert event.client_address == "203.0.113.7"
    assert "(MLLP from 203.0.113.7:40123)" in event.target


def test_behind_a_proxy_a_connection_without_its_header_is_closed_unanswered(proxied, patient):
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=SECONDS) as client:
        client.sendall(START + FINAL + END)
        assert client.recv(65536) == b""  # closed, no ACK

    assert not CTCDraw.objects.exists()


def test_the_command_refuses_a_user_that_does_not_exist(transactional_db):
    with pytest.raises(CommandError, match="No active user named 'nobody'"):
        call_command("mllp_listener", "--user", "nobody", "--port", str(_free_port()))


# --- the command: python-hl7's mllp_send, SIGTERM -------------------------------------


def _database_url(tmp_path: Path) -> str:
    """The test database, for a subprocess (an in-memory SQLite one copied to a file)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        copy = tmp_path / "db.sqlite3"
        connection.ensure_connection()
        with sqlite3.connect(copy) as target:
            connection.connection.backup(target)
        return f"sqlite:///{copy}"
    return (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def command(tmp_path, patient) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """`manage.py mllp_listener` as a process of its own, on the test database."""
    port = _free_port()
    database = _database_url(tmp_path)
    env = {**os.environ, "DATABASE_URL": database, "DEBUG": "True"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "mllp_listener", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until it listens (or has failed)
        assert f"Listening for MLLP on 127.0.0.1:{port}" in line, process.stderr
        yield process, port, Path(database.removeprefix("sqlite:///"))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=SECONDS)


def test_the_command_says_when_its_port_is_taken(tmp_path, lab_account):
    # A process of its own, as it runs: it sets signal handlers, for the main thread only.
    env = {**os.environ, "DATABASE_URL": _database_url(tmp_path), "DEBUG": "True"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        ran = subprocess.run(
            [sys.executable, "manage.py", "mllp_listener", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=SECONDS * 4,
        )

    assert ran.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in ran.stderr


def test_mllp_send_files_a_result_through_the_command(command, tmp_path):
    process, port, database = command
    message = tmp_path / "result.hl7"
    message.write_bytes(FINAL.replace(b"\r", b"\n"))  # as a text editor saves it

    sent = subprocess.run(
        [
            Path(sys.executable).parent / "mllp_send",
            "--loose",  # as docs/interoperability.md says
            "--port",
            str(port),
            "--file",
            message,
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS,
    )

    assert sent.returncode == 0, sent.stderr
    assert "MSA|AA|CL260302-0001|Recorded: accession CS-26-0101" in sent.stdout
    assert _stored_accessions(database) == ["CS-26-0101"]


def _stored_accessions(database: Path) -> list[str]:
    """The accessions the command stored (on SQLite, in its copy of the test database)."""
    if connection.vendor != "sqlite":
        return list(CTCDraw.objects.values_list("accession", flat=True))
    with sqlite3.connect(database) as copy:
        return [row[0] for row in copy.execute("SELECT accession FROM patients_ctcdraw")]


def test_sigterm_stops_the_command_cleanly(command):
    process, port, _ = command
    idle = socket.create_connection(("127.0.0.1", port), timeout=SECONDS)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=SECONDS) == 0
    assert idle.recv(1) == b""  # the idle connection was closed
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=SECONDS).close()
    _, errors = process.communicate(timeout=SECONDS)
    assert "MLLP listener stopped" in errors


def test_sigterm_answers_the_message_being_stored_before_stopping(command):
    process, port, database = command

    async def send_then_stop() -> bytes:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        writer.writeblock(_padded(MAX_MESSAGE_BYTES))  # about a second's work to store
        await writer.drain()
        await asyncio.sleep(0.3)  # the message has arrived; it is being stored
        process.send_signal(signal.SIGTERM)
        answer = await asyncio.wait_for(reader.readblock(), SECONDS)
        writer.close()
        return answer

    answer = _run_apart(send_then_stop())

    assert _acks(answer)[0][0] == "AA"
    assert process.wait(timeout=SECONDS) == 0
    assert _stored_accessions(database) == ["CS-26-0101"]


def test_it_waits_for_a_slow_sender_without_blocking_others(mllp, patient):
    async def slow_and_fast() -> bytes:
        reader, writer = await open_hl7_connection("127.0.0.1", mllp.port)
        writer.write(START + _message(1)[:100])  # and then nothing for now
        await writer.drain()
        (answer,) = await _converse(mllp.port, _message(2))
        writer.write(_message(1)[100:] + END)
        await writer.drain()
        slow = await asyncio.wait_for(reader.readblock(), SECONDS)
        writer.close()
        return answer + b"\r" + slow

    both = _run_apart(slow_and_fast())

    # The fast sender was answered while the slow one was still sending.
    assert [a[:2] for a in _acks(both)] == [("AA", "CL-0002"), ("AA", "CL-0001")]
