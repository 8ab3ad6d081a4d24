"""Acknowledging the results that wait for review from before go-live, in bulk.

A clinic upgrading from clinical rules version 1 (or starting with a history
imported from elsewhere) finds every earlier result with a high or review flag
in the results to review: tens of thousands, already dealt with at the time,
outside this system. `manage.py acknowledge_history` acknowledges those reported
before a given day, once, as a named user with a note saying why (the upgrade
documentation: docs/deployment.md). Each is the same acknowledgement a nurse
records from the list (the result's flags, the user, the note, a history row),
and the run is one access-log event naming the results and their patients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from patients import assessment, audit
from patients.assessment.results import REPORTED_AT, waiting
from patients.messages import NOTE_REQUIRED
from patients.models import AccessAction, Acknowledgement, CTCDraw, Patient
from patients.services.records import (
    ACKNOWLEDGED_REASON,
    Actor,
    acting_account,
    fill_acknowledgement,
)

# Patients locked, assessed and acknowledged per round: the loader's few queries each.
BACKLOG_BATCH = 200


@dataclass(frozen=True)
class Backlog:
    """Results waiting for review reported before `before` (a local day): for each
    patient (by id), the tube standing for each result (by id)."""

    before: date
    by_patient: dict[int, list[int]]

    @property
    def results(self) -> int:
        return sum(len(ids) for ids in self.by_patient.values())

    @property
    def draw_ids(self) -> list[int]:
        return sorted(pk for ids in self.by_patient.values() for pk in ids)


def reported_before(before: date) -> datetime:
    """The start of the local day `before`: results that reached the record earlier."""
    return timezone.make_aware(datetime.combine(before, time.min))


def backlog_before(before: date, *, patient_ids: Iterable[int] | None = None) -> Backlog:
    """What `acknowledge_backlog` would acknowledge now (read from the stored ranks the
    results to review are listed by: one query)."""
    rows = waiting(CTCDraw.objects.all()).filter(
        **({"patient_id__in": list(patient_ids)} if patient_ids is not None else {})
    )
    by_patient: dict[int, list[int]] = {}
    for draw_id, patient_id in (
        rows.alias(reported=REPORTED_AT)
        .filter(reported__lt=reported_before(before))
        .order_by("patient_id", "id")
        .values_list("pk", "patient_id")
    ):
        by_patient.setdefault(patient_id, []).append(draw_id)
    return Backlog(before, by_patient)


@transaction.atomic
def acknowledge_backlog(
    *,
    before: date,
    by: Actor,
    note: str,
    progress: Callable[[int], object] | None = None,
) -> Backlog:
    """Acknowledge, as `by` with `note`, every result waiting for review that reached
    the record before the local day `before`; return what was acknowledged.

    All or nothing, in one transaction: each patient is locked (as a single
    acknowledgement locks it) and assessed live before its results are
    acknowledged, so a result is acknowledged only if it still needs review and
    nobody has acknowledged it since the plan was read. Then the stored ranks are
    refreshed and one access-log event records the run (the results' and the
    patients' ids). Idempotent: a second run finds nothing and records nothing.
    `progress` is called with how many patients each round finished.
    """
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": [NOTE_REQUIRED]})
    if before > timezone.localdate():
        raise ValidationError(
            {"before": [f"{before:%Y-%m-%d} is in the future: give the day the clinic went live."]}
        )
    account = acting_account(by)
    done: dict[int, list[int]] = {}
    patient_ids = sorted(backlog_before(before).by_patient)
    for batch in _chunks(patient_ids, BACKLOG_BATCH):
        done.update(_acknowledge_batch(batch, before, by=by, note=note))
        if progress is not None:
            progress(len(batch))
    acknowledged = Backlog(before, done)
    if acknowledged.results:
        _record(acknowledged, account)
    return acknowledged


def _acknowledge_batch(
    patient_ids: Sequence[int], before: date, *, by: Actor, note: str
) -> dict[int, list[int]]:
    # Locked in id order, as every writer locks one patient: no deadlock with them.
    patients = list(
        Patient.objects.select_for_update(no_key=True).filter(pk__in=patient_ids).order_by("pk")
    )
    # The plan read again, under the lock: what is still waiting now.
    planned = backlog_before(before, patient_ids=patient_ids).by_patient
    series = assessment.series_for_many(p for p in patients if p.pk in planned)
    acks: list[Acknowledgement] = []
    done: dict[int, list[int]] = {}
    for patient_id, draw_ids in planned.items():
        patient_series = series[patient_id]
        for draw_id in draw_ids:
            found = patient_series.by_draw_id.get(draw_id)
            if found is None or not found.needs_review or patient_series.result_acknowledged(found):
                continue  # entered in error, or no longer waiting: nothing to acknowledge
            sample = found.sample
            first = sample.sample.key if sample is not None else draw_id
            ack = fill_acknowledgement(
                Acknowledgement(draw_id=first, patient_id=patient_id),
                patient_series.result_flags(found),
                by=by,
                note=note,
                # The model's checks in full once a round: the others differ only in
                # the draw, loaded under the lock (they cost four queries each).
                validate=not acks,
            )
            patient_series.acknowledge(ack)  # a second tube of the sample is covered now
            acks.append(ack)
            done.setdefault(patient_id, []).append(draw_id)
    bulk_create_with_history(
        acks,
        Acknowledgement,
        batch_size=500,
        default_user=acting_account(by),
        default_change_reason=ACKNOWLEDGED_REASON,
    )
    assessment.refresh_review_ranks(done)
    return done


def _record(acknowledged: Backlog, account: object) -> None:
    """One access-log event: which results (draw ids), whose (patient ids), and the day."""
    patients = sorted(acknowledged.by_patient)
    target = (
        f"results reported before {acknowledged.before:%Y-%m-%d} acknowledged in bulk: "
        f"{acknowledged.results} results of {len(patients)} patients; "
        f"draws {_ids(acknowledged.draw_ids)}; {audit.patients_text(patients)}"
    )
    audit.record(
        None,
        AccessAction.BULK_ACKNOWLEDGEMENT,
        patient=patients[0] if len(patients) == 1 else None,
        listed=patients,
        target=target,
        user=account,
    )


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(pk) for pk in ids)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    return (items[k : k + size] for k in range(0, len(items), size))
