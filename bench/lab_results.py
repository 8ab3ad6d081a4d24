"""`python bench/lab_results.py`: how fast lab results come in over HL7 v2, against the CSV import.

A lab sends a burst of results after an instrument run. This script sends the
same number of results (`BENCH_HL7_MESSAGES`, 1,000) four ways, in rounds that
alternate between them, and reports results per second for each against the
CSV import's rows per second in the same round:

- **CSV**: one file of N rows, `importer.import_csv` as the upload page's
  confirm step runs it (committed);
- **HTTP, one message a request**: `POST /api/v1/hl7/oru/` with an API token,
  in-process through the whole middleware stack (Django's test client), as an
  interface engine posts each message as it comes;
- **MLLP, one connection**: `manage.py mllp_listener` as a process of its own,
  one TCP connection sending each message after the previous one's ACK, as
  MLLP's original mode requires;
- **MLLP, 4 connections**: four such connections at once (several analysers, or
  an engine with parallel outbound queues).

Every message is a real ORU^R01 (MSH, PID with the patient's name, birth date
and sex, so the demographic cross-check runs; ORC, OBR, the CTC count's OBX,
SPM), for a different patient of a synthetic cohort (`BENCH_PATIENTS`, 1,000),
at a time no earlier round used. Every ACK must be AA: any other answer is
counted and shown. Each result is committed: this measures what a lab waits
for, history rows, the review-rank refresh and the access log included.

Same setup as `worklist.py`: PostgreSQL from `DATABASE_URL`, production
settings, a database of its own, `<name>_bench_hl7` (dropped and recreated; no
other is touched).

    BENCH_PATIENTS (1000)       the cohort
    BENCH_HL7_MESSAGES (1000)   results per way per round
    BENCH_ROUNDS (3)            alternating rounds
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 (the path must be set first)

# Before every synthetic draw, after every synthetic birth: no result meets the cohort's.
FIRST_DRAW = datetime(2018, 1, 1, 9, 0, tzinfo=UTC)
MLLP_CONNECTIONS = 4
HL7_PATH = "/api/v1/hl7/oru/"


@dataclass(frozen=True)
class Way:
    name: str
    send: Callable[[Sequence[Any], int], int]  # (patients, round) -> answers other than AA


def main() -> None:
    patients_wanted = int(os.getenv("BENCH_PATIENTS", "1000"))
    messages = int(os.getenv("BENCH_HL7_MESSAGES", "1000"))
    rounds = int(os.getenv("BENCH_ROUNDS", "3"))
    began = time.monotonic()
    url = run._fresh_database(run._postgres_url(), suffix="_bench_hl7")
    os.environ.update(run._bench_environment(url))
    django.setup()

    from bench import steps
    from patients.models import Patient

    record = run.Run(run.Options.from_env())
    steps.prepare(record)
    steps.generate(record, patients_wanted)
    cohort = list(Patient.objects.order_by("pk")[:messages])
    if len(cohort) < messages:
        sys.exit(f"{messages:,} messages need as many patients; the cohort has {len(cohort):,}.")
    listener = _Listener()
    try:
        ways = [
            Way("CSV import (rows)", _csv),
            Way("HTTP endpoint, 1 message a request", _http_sender()),
            Way("MLLP, 1 connection", lambda p, r: _mllp(listener.port, p, r, 1)),
            Way(f"MLLP, {MLLP_CONNECTIONS} connections", _mllp_parallel(listener.port)),
        ]
        rates: dict[str, list[float]] = {way.name: [] for way in ways}
        refused: dict[str, int] = dict.fromkeys(rates, 0)
        for k in range(rounds):
            for number, way in enumerate(ways):
                start = time.perf_counter()
                refused[way.name] += way.send(cohort, k * len(ways) + number)
                rates[way.name].append(messages / (time.perf_counter() - start))
            print(f"round {k + 1} of {rounds} done", file=sys.stderr)
    finally:
        listener.stop()
    print(_table(rates, refused, messages, len(cohort)))
    print(f"\n{time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.2f}")


# --- the messages -------------------------------------------------------------------------


def drawn_at(slot: int, k: int) -> datetime:
    """Result `k` of send `slot`: a minute apart, a day apart per send, never reused."""
    return FIRST_DRAW + timedelta(days=slot, minutes=k)


def message(patient: Any, slot: int, k: int) -> str:
    """An ORU^R01 with one CTC count for `patient`, as a CellSearch lab system sends it."""
    when = drawn_at(slot, k)
    drawn = when.strftime("%Y%m%d%H%M%S+0000")
    resulted = (when + timedelta(hours=26)).strftime("%Y%m%d%H%M%S+0000")
    accession = f"CS-B{slot:03d}-{k:05d}"
    sex = {"female": "F", "male": "M"}.get(patient.sex, "U")
    segments = [
        f"MSH|^~\\&|CELLSEARCH_LIS|CITYLAB|CTCTRACK|ONCOLOGY|{resulted}||ORU^R01^ORU_R01|"
        f"B{slot:03d}-{k:05d}|P|2.5.1|||AL|NE",
        f"PID|1||{patient.mrn}^^^GENHOSP^MR||{patient.family_name}^{patient.given_name}||"
        f"{patient.birth_date:%Y%m%d}|{sex}",
        f"ORC|RE|ORD-{accession}|{accession}^CITYLAB||CM",
        f"OBR|1|ORD-{accession}|{accession}^CITYLAB|67568-6^Circulating tumor cells^LN|||"
        f"{drawn}||7.5^mL|||||||||||||{resulted}|||F",
        f"OBX|1|NM|67568-6^Circulating tumor cells^LN|1|{(slot * 7 + k) % 23}|cells/7.5 mL|"
        f"<5||||F|||{drawn}",
        f"SPM|1|{accession}&CITYLAB||119297000^Blood specimen^SCT|||||||||7.5^mL|||||{drawn}",
    ]
    return "\r".join(segments) + "\r"


def _accepted(ack: str) -> bool:
    return "MSA|AA|" in ack


# --- the four ways -----------------------------------------------------------------------


def _csv(patients: Sequence[Any], slot: int) -> int:
    from patients import services
    from patients.interop.csv import importer

    lines = ["mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment"]
    for k, patient in enumerate(patients):
        when = drawn_at(slot, k).isoformat()
        lines.append(f"{patient.mrn},{when},7.5,resulted,{(slot * 7 + k) % 23},CSV-{slot}-{k},")
    by = services.system_user("csv-import")
    plan = importer.import_csv(
        "\n".join(lines) + "\n", by=by, source="bench.csv", channel="benchmark"
    )
    return 0 if plan.ok and len(plan.new) == len(patients) else len(patients) - len(plan.new)


def _http_sender() -> Callable[[Sequence[Any], int], int]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from patients.accounts import api_tokens
    from patients.roles import ONCOLOGIST

    # The interface engine's account: an oncologist's permissions (lab results add and
    # correct draws), with a password nobody knows; its token is what the engine sends.
    engine = get_user_model().objects.create_user("bench-interface-engine")
    engine.groups.add(Group.objects.get(name=ONCOLOGIST))
    _token, key = api_tokens.issue(engine, name="benchmark interface engine")
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")

    def send(patients: Sequence[Any], slot: int) -> int:
        refused = 0
        for k, patient in enumerate(patients):
            answer = client.post(
                HL7_PATH, data=message(patient, slot, k), content_type="application/hl7-v2"
            )
            refused += answer.status_code != 200 or not _accepted(answer.content.decode())
        return refused

    return send


class _Listener:
    """`manage.py mllp_listener` on a free port, as a process of its own."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "mllp_listener", "--port", str(self.port)],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # once it listens (or has failed)
        if "Listening for MLLP" not in line:
            self.stop()
            sys.exit(f"The MLLP listener did not start: {line!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _mllp(port: int, patients: Sequence[Any], slot: int, connections: int) -> int:
    return asyncio.run(_mllp_connections(port, patients, slot, connections))


def _mllp_parallel(port: int) -> Callable[[Sequence[Any], int], int]:
    return lambda patients, slot: _mllp(port, patients, slot, MLLP_CONNECTIONS)


async def _mllp_connections(port: int, patients: Sequence[Any], slot: int, connections: int) -> int:
    from hl7.mllp import open_hl7_connection

    async def one(share: range) -> int:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        refused = 0
        try:
            for k in share:
                writer.writemessage(message(patients[k], slot, k))
                await writer.drain()
                refused += not _accepted(str(await reader.readmessage()))
        finally:
            writer.close()
            await writer.wait_closed()
        return refused

    shares = [range(c, len(patients), connections) for c in range(connections)]
    return sum(await asyncio.gather(*(one(share) for share in shares)))


# --- the report --------------------------------------------------------------------------


def _table(rates: dict[str, list[float]], refused: dict[str, int], n: int, cohort: int) -> str:
    csv_rates = next(iter(rates.values()))
    lines = [
        f"{n:,} results a way a round, for {cohort:,} patients; rounds alternate the ways.",
        "",
        "| way | results per second (median) | each round | against the CSV import "
        "(median of rounds) | answers other than AA |",
        "|---|---:|---|---:|---:|",
    ]
    for name, values in rates.items():
        ratios = [v / c for v, c in zip(values, csv_rates, strict=True)]
        lines.append(
            f"| {name} | {statistics.median(values):,.0f} "
            f"| {' '.join(f'{v:,.0f}' for v in values)} "
            f"| {statistics.median(ratios):.2f}x | {refused[name]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
