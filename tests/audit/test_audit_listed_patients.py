"""Who saw this patient? The audit report finds the lists that showed them too.

A page of the worklist, the patient list, an export or a message about several
patients is one access-log event listing its patients: the report's patient and
team filters find it for each of them (`AccessEventPatient`), the rows are
append-only, and the chain covers them (format 3), so a row removed or added is
found by `verify_audit`.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, migrations, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from patients import audit, services
from patients.audit import chain
from patients.models import AccessAction, AccessEvent, AccessEventPatient, AuditLogIsAppendOnly
from tests import builders

pytestmark = pytest.mark.django_db

URL = "/audit/"
LINKS = AccessEventPatient._meta.db_table
EVENTS = AccessEvent._meta.db_table


def _sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _verify() -> str:
    """What verify_audit says; a broken chain raises CommandError (exit status 1)."""
    out = _Out()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as exc:
        return str(exc)
    return out.text


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def _events_of(client, **filters) -> list[int]:
    response = client.get(URL, filters)
    assert response.status_code == 200
    return [event.pk for event in response.context["page"].object_list]


@pytest.fixture
def three(oncologist):
    return [builders.patient(oncologist, mrn=f"L-{k}") for k in range(3)]


# --- the report ----------------------------------------------------------------------------


def test_a_patient_filter_finds_the_pages_that_listed_them_among_others(
    client, admin_user, nurse, three
):
    a, b, c = three
    client.force_login(nurse)
    assert client.get(reverse("patients:list")).status_code == 200  # lists all three
    the_list = AccessEvent.objects.get(action=AccessAction.PATIENT_LIST)
    b_and_c = audit.record_read(None, AccessAction.EXPORT, patient_ids=[b.pk, c.pk], what="x")
    only_c = audit.record(None, AccessAction.VIEW, patient=c, target="patient page")
    client.force_login(admin_user)

    assert _events_of(client, patient=a.pk) == [the_list.pk]
    assert _events_of(client, patient=b.pk) == [b_and_c.pk, the_list.pk]
    assert _events_of(client, patient=c.pk) == [only_c.pk, b_and_c.pk, the_list.pk]
    assert _events_of(client, patient=c.pk, action=AccessAction.EXPORT) == [b_and_c.pk]
    page = client.get(URL, {"patient": a.pk}).content.decode()
    assert f"naming patient {a.pk} or listing them among others" in page


def test_the_csv_gives_the_listed_patients_of_each_event(client, admin_user, three):
    a, b, c = three
    listing = audit.record_read(None, AccessAction.RESULTS, patient_ids=[c.pk, a.pk], what="r")
    client.force_login(admin_user)

    r = client.get(URL, {"patient": a.pk, "format": "csv"})

    header, *rows = csv.reader(io.StringIO(b"".join(r.streaming_content).decode()))
    (row,) = [dict(zip(header, row, strict=True)) for row in rows]
    assert row["event"] == str(listing.pk)
    assert (row["patient_id"], row["listed_patient_ids"]) == ("", f"{a.pk} {c.pk}")
    assert row["target"] == f"r: patients {a.pk}, {c.pk}"


def test_the_team_filter_finds_the_events_listing_a_patient_of_the_team(
    client, admin_user, oncologist
):
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    a, b, c = (builders.patient(oncologist, mrn=f"T-{k}") for k in range(3))
    services.teams.add_patients_to_team(north, [a], by=admin_user)
    services.teams.add_patients_to_team(south, [b, c], by=admin_user)
    with_a = audit.record_read(None, AccessAction.WORKLIST, patient_ids=[a.pk, b.pk], what="w")
    audit.record_read(None, AccessAction.WORKLIST, patient_ids=[b.pk, c.pk], what="w")
    client.force_login(admin_user)

    assert _events_of(client, team=north.pk, action=AccessAction.WORKLIST) == [with_a.pk]


def test_an_event_names_one_patient_or_lists_several_never_both(patient, oncologist):
    alone = audit.record_read(None, AccessAction.EXPORT, patient_ids=[patient.pk], what="x")
    other = builders.patient(oncologist)

    assert alone.patient_id == patient.pk
    assert not AccessEventPatient.objects.filter(event=alone).exists()
    with pytest.raises(ValueError, match="not both"):
        audit.record(None, AccessAction.EXPORT, patient=patient, listed=[patient.pk, other.pk])


def test_escalation_and_bulk_acknowledgement_texts_still_name_their_patients():
    assert audit.patients_text([7, 3, 3]) == "patients 3, 7"
    assert chain.text_listed({"patient_id": None, "target": "w: patients 3, 7"}) == [3, 7]
    escalated = "high results escalated by e-mail: draws 1, 2; patients 3, 7; to users 5"
    assert chain.text_listed({"patient_id": None, "target": escalated}) == [3, 7]
    # A message's control id cannot fake a list: it holds no space or comma.
    assert chain.text_listed({"patient_id": None, "target": "HL7 patients:1: AA"}) == []
    assert chain.text_listed({"patient_id": 3, "target": "...; patients 3"}) == []


# --- append-only, and covered by the chain ------------------------------------------------


def test_the_listed_patients_cannot_be_changed_or_deleted(three):
    ids = [p.pk for p in three]
    event = audit.record_read(None, AccessAction.WORKLIST, patient_ids=ids, what="w")
    link = AccessEventPatient.objects.filter(event=event).first()

    with pytest.raises(AuditLogIsAppendOnly):
        link.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AccessEventPatient.objects.filter(event=event).delete()
    for statement in (f"UPDATE {LINKS} SET patient_id = %s", f"DELETE FROM {LINKS} WHERE 1 = 1"):
        with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
            _sql(statement.replace("%s", str(three[0].pk)))
    assert AccessEventPatient.objects.filter(event=event).count() == 3


def _behind_the_triggers(statement: str, params: list) -> None:
    """What someone with the database owner's rights can do (undone with the test)."""
    if connection.vendor == "postgresql":
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
        _sql(f"ALTER TABLE {LINKS} DISABLE TRIGGER USER")
    else:
        _sql("DROP TRIGGER accesseventpatient_no_delete")
    _sql(statement, params)


def test_a_listed_patient_removed_behind_the_triggers_breaks_the_chain(nurse, three):
    a, b, c = three
    audit.record(None, AccessAction.LOGIN, user=nurse)
    listing = audit.record_read(None, AccessAction.WORKLIST, patient_ids=[a.pk, b.pk], what="w")
    audit.record(None, AccessAction.LOGOUT, user=nurse)
    assert _verify().startswith("Audit chain intact: 3 events")

    _behind_the_triggers(
        f"DELETE FROM {LINKS} WHERE event_id = %s AND patient_id = %s", [listing.pk, a.pk]
    )

    assert _verify().startswith(f"Broken at event #{listing.pk}: its recorded values")


def test_a_listed_patient_added_afterwards_breaks_the_chain(nurse, three):
    a, b, c = three
    listing = audit.record_read(None, AccessAction.WORKLIST, patient_ids=[a.pk, b.pk], what="w")
    audit.record(None, AccessAction.VIEW, user=nurse, target="a page")

    # Inserting is what the triggers allow: the chain is what refuses it.
    _sql(f"INSERT INTO {LINKS} (event_id, patient_id) VALUES (%s, %s)", [listing.pk, c.pk])

    assert _verify().startswith(f"Broken at event #{listing.pk}: its recorded values")


def test_an_event_in_the_previous_chain_format_after_a_newer_one_breaks_the_chain(nurse):
    first = audit.record(None, AccessAction.LOGIN, user=nurse)
    forged = {f: getattr(first, f) for f in chain.CHAIN_FIELDS} | {"prev_hash": first.hash}
    digest = chain.event_hash(forged, chain_format=2)
    _sql(
        f"INSERT INTO {EVENTS} (at, user_id, username, action, target, outcome, prev_hash, "
        "hash, chain_format) VALUES (%s, %s, %s, 'login', '', 'success', %s, %s, 2)",
        [first.at, nurse.pk, nurse.username, first.hash, digest],
    )

    assert "its chain format 2 is older than the events' before it (3)" in _verify()


# --- events from before: their patients read from their text -----------------------------


def _as_format_2(target: str, *, prev: str = chain.GENESIS_HASH) -> int:
    """An event as written before this change: keyed, format 2, its list in its text."""
    event = AccessEvent(action=AccessAction.WORKLIST, target=target, prev_hash=prev)
    fields = {f: getattr(event, f) for f in chain.CHAIN_FIELDS}
    digest = chain.event_hash(fields, chain_format=2)
    _sql(
        f"INSERT INTO {EVENTS} (at, username, action, target, outcome, prev_hash, hash, "
        "chain_format) VALUES (%s, '', %s, %s, 'success', %s, %s, 2)",
        [event.at, event.action, target, prev, digest],
    )
    return AccessEvent.objects.get(hash=digest).pk


def test_the_migration_reads_the_patients_of_earlier_events_from_their_text(three):
    a, b, c = three
    listing = _as_format_2(f"worklist 2026-11-26..2026-12-02: patients {a.pk}, {c.pk}")
    assert "are not those its text names" in _verify()  # no rows yet: the migration's work

    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(("patients", "0025_access_event_patients"))
    step = executor.loader.get_migration("patients", "0025_access_event_patients")
    (fill,) = [
        op
        for op in step.operations
        if isinstance(op, migrations.RunPython) and op.code.__name__ == "read_rows_from_text"
    ]
    fill.code(state.apps, None)

    assert set(
        AccessEventPatient.objects.filter(event_id=listing).values_list("patient", flat=True)
    ) == {a.pk, c.pk}
    assert _verify().startswith("Audit chain intact: 1 event")


def test_a_row_added_to_an_earlier_event_breaks_the_chain(three):
    a, b, c = three
    listing = _as_format_2(f"worklist: patients {a.pk}, {b.pk}")
    for patient in (a, b, c):
        _sql(f"INSERT INTO {LINKS} (event_id, patient_id) VALUES (%s, %s)", [listing, patient.pk])

    assert _verify().startswith(
        f"Broken at event #{listing}: the patients listed as shown by it are not those"
    )
