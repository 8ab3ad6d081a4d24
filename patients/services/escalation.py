"""Escalation: high results nobody acknowledged in time, e-mailed to an oncologist.

Spec section 5: a result with a high flag that is not acknowledged within
`CTC_ESCALATE_AFTER_HOURS` of its `resulted_at` is escalated once, to the
patient's treating oncologist or, when none can be reached, to every
oncologist; one e-mail per recipient per run, with no patient data in it; and
the result carries the mark (`CTCDraw.escalated_at`) in both lists and the
access log. `manage.py escalate_flags` runs it every 15 minutes
(docs/deployment.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from patients import access, audit
from patients.assessment.results import waiting
from patients.models import AccessAction, CTCDraw
from patients.roles import ONCOLOGIST
from patients.rules import SEVERITY_ORDER, Severity
from patients.services.records import system_user

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The account the access-log event names as acting: the job, not a person.
ESCALATION_ACCOUNT = "escalation"
# Where the e-mail sends its reader: the results to review (patients.web), sign-in first.
RESULTS_PATH = "/results/"
# Any number unique among this database's advisory locks (audit.chain has another):
# held by a run until it commits, so two runs at once cannot mail the same results.
RUN_LOCK_KEY = 0x0C7C_E5CA
HIGH = SEVERITY_ORDER[Severity.HIGH]
# Results marked per UPDATE: keeps `IN (...)` lists short for SQLite after a long outage.
MARK_BATCH = 500


@dataclass(frozen=True)
class Escalation:
    """What one run did.

    `draw_ids`: the results escalated (by the tube standing for each);
    `recipients`: how many of them went to each user (by id); `unreachable`: the
    results due but left for the next run because no active oncologist has an
    e-mail address; `busy`: another run held the lock, so this one did nothing.
    """

    draw_ids: tuple[int, ...] = ()
    recipients: dict[int, int] = field(default_factory=dict)
    unreachable: tuple[int, ...] = ()
    busy: bool = False


def escalate_flags(
    *, now: datetime | None = None, progress: Callable[[int, int], object] | None = None
) -> Escalation:
    """Escalate every high result unacknowledged `CTC_ESCALATE_AFTER_HOURS` after it arrived.

    Each such result (its stored `review_rank` high, not acknowledged, not entered
    in error, never escalated, `resulted_at` at or before `now` minus the delay)
    goes to the patient's oncologist when that account is an active oncologist
    with an e-mail address, otherwise to every such oncologist; with care teams,
    only to oncologists who may see the patient (a result none of them may see
    waits, `unreachable`). Each recipient
    gets one e-mail saying how many results wait and linking to the list: no
    name, MRN, count or date of any patient.

    Idempotent: the results are marked `escalated_at` only after every e-mail was
    handed to the backend, in the same transaction as the access-log event. If
    sending raises, nothing is marked and the exception propagates, so the next
    run sends them all again: a recipient may hear twice, never not at all.
    With no oncologist to send to, nothing is sent or marked (`unreachable`). On
    PostgreSQL a run that finds another one in progress does nothing (`busy`).

    `progress`, if given, is called with (results marked so far, results to mark)
    after each round of `MARK_BATCH` results marked (the command's progress bar:
    after an outage, or on the first run after an upgrade, hundreds of thousands).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not _run_lock():
            return Escalation(busy=True)
        due = _due(now)
        oncologists = _oncologists() if due else []
        plan = _plan(due, oncologists) if oncologists else {}
        sent = {draw_id for draw_ids in plan.values() for draw_id in draw_ids}
        # A result nobody who may see its patient can be sent (care teams) waits too.
        unreachable = tuple(draw_id for draw_id, _, _ in due if draw_id not in sent)
        due = [row for row in due if row[0] in sent]
        escalated = tuple(draw_id for draw_id, _, _ in due)
        if not escalated:
            return Escalation(unreachable=unreachable)
        _send(plan)
        marked = 0
        for ids in _chunks(escalated, MARK_BATCH):  # derived data: no history row
            CTCDraw.objects.filter(pk__in=ids).update(escalated_at=now)
            marked += len(ids)
            if progress is not None:
                progress(marked, len(escalated))
        _record(due, plan)
    return Escalation(
        draw_ids=escalated,
        recipients={user.pk: len(results) for user, results in plan.items()},
        unreachable=unreachable,
    )


def _run_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite (one machine): systemd, or cron's flock, runs one at a time
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RUN_LOCK_KEY])
        (locked,) = cursor.fetchone()
    return bool(locked)


def _due(now: datetime) -> list[tuple[int, int, int | None]]:
    """(draw id, patient id, the patient's oncologist's id) of each result to escalate."""
    since = now - timedelta(hours=settings.CTC_ESCALATE_AFTER_HOURS)
    return list(
        waiting(CTCDraw.objects.all())
        .filter(review_rank=HIGH, escalated_at__isnull=True, resulted_at__lte=since)
        .values_list("pk", "patient_id", "patient__oncologist_id")
    )


def _oncologists() -> list[User]:
    """Every account that can receive an escalation: active oncologists with an address."""
    return list(
        get_user_model()
        .objects.filter(groups__name=ONCOLOGIST, is_active=True)
        .exclude(email="")
        .order_by("pk")
    )


def _plan(
    due: Sequence[tuple[int, int, int | None]], oncologists: Sequence[User]
) -> dict[User, list[int]]:
    """Who hears of which results: the treating oncologist if reachable, else all of them.

    Only those who may see the patient (`access`: with care teams, the oncologists of
    the patient's teams): one query per oncologist, whatever the number of results.
    """
    patient_ids = {patient_id for _, patient_id, _ in due}
    sees = {
        user.pk: set(access.patients(user).filter(pk__in=patient_ids).values_list("pk", flat=True))
        for user in oncologists
    }
    by_id = {user.pk: user for user in oncologists}
    plan: defaultdict[User, list[int]] = defaultdict(list)
    everyone: dict[int, list[User]] = {}  # by patient: who may see them, asked once
    for draw_id, patient_id, oncologist_id in due:
        treating = by_id.get(oncologist_id) if oncologist_id is not None else None
        if treating is not None and patient_id in sees[treating.pk]:
            recipients = [treating]  # without asking about every oncologist for every result
        else:
            if patient_id not in everyone:
                everyone[patient_id] = [user for user in oncologists if patient_id in sees[user.pk]]
            recipients = everyone[patient_id]
        for user in recipients:
            plan[user].append(draw_id)
    return dict(plan)


def _send(plan: dict[User, list[int]]) -> None:
    """One e-mail per recipient over one connection; raises if the backend does."""
    link = f"{settings.CTCTRACK_BASE_URL}{RESULTS_PATH}"
    messages = []
    for user, draw_ids in plan.items():
        context = {
            "results": len(draw_ids),
            "hours": settings.CTC_ESCALATE_AFTER_HOURS,
            "link": link,
        }
        subject = render_to_string("patients/email/escalation_subject.txt", context)
        body = render_to_string("patients/email/escalation_body.txt", context)
        messages.append(EmailMessage(" ".join(subject.split()), body, to=[user.email]))
    with get_connection(fail_silently=False) as mail:
        mail.send_messages(messages)


def _record(due: Sequence[tuple[int, int, int | None]], plan: dict[User, list[int]]) -> None:
    """One access-log event: which results (draw ids), whose (patient ids), to whom."""
    draws = sorted(draw_id for draw_id, _, _ in due)
    patients = sorted({patient_id for _, patient_id, _ in due})
    users = sorted(user.pk for user in plan)
    target = (
        f"high results escalated by e-mail: draws {_ids(draws)}; "
        f"{audit.patients_text(patients)}; to users {_ids(users)}"
    )
    audit.record(
        None,
        AccessAction.ESCALATION,
        patient=patients[0] if len(patients) == 1 else None,
        listed=patients,
        target=target,
        user=system_user(ESCALATION_ACCOUNT),
    )


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(pk) for pk in ids)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    return (items[k : k + size] for k in range(0, len(items), size))
