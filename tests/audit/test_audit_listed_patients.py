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
from django.db import DatabaseError, IntegrityError, connection, migrations, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from patients import audit, services
from patients.audit import chain
from patients.audit import views as audit_views
from patients.models import AccessAction, AccessEvent, AccessEventPatient, AuditLogIsAppendOnly
from tests import builders

from .test_audit_chain import _Out, _sql, _verify

pytestmark = pytest.mark.django_db

URL = "/audit/"
LINKS = AccessEventPatient._meta.db_table
EVENTS = AccessEvent._meta.db_table


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


@pytest.mark.parametrize("dense", [True, False], ids=["event by event", "gathered first"])
def test_the_team_filter_finds_the_events_listing_a_patient_of_the_team(
    client, admin_user, oncologist, monkeypatch, dense
):
    # A team of many of the clinic's patients is tested event by event, a small one's
    # events gathered through the indexes first: the same events either way.
    monkeypatch.setattr(audit_views, "DENSE_TEAM_SHARE", 0.0 if dense else 2.0)
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    a, b, c = (builders.patient(oncologist, mrn=f"T-{k}") for k in range(3))
    services.teams.add_patients_to_team(north, [a], by=admin_user)
    services.teams.add_patients_to_team(south, [b, c], by=admin_user)
    with_a = audit.record_read(None, AccessAction.WORKLIST, patient_ids=[a.pk, b.pk], what="w")
    audit.record_read(None, AccessAction.WORKLIST, patient_ids=[b.pk, c.pk], what="w")
    naming_a = audit.record(None, AccessAction.VIEW, patient=a, target="patient page")
    audit.record(None, AccessAction.VIEW, patient=b, target="patient page")
    client.force_login(admin_user)

    assert _events_of(client, team=north.pk, action=AccessAction.WORKLIST) == [with_a.pk]
    assert _events_of(client, team=north.pk, to="2099-01-01") == [naming_a.pk, with_a.pk]


def test_a_list_of_one_patient_names_them_and_keeps_their_row(patient, oncologist):
    """A list writes its rows however many it showed: its statements do not depend on it."""
    alone = audit.record_read(None, AccessAction.EXPORT, patient_ids=[patient.pk], what="x")
    other = builders.patient(oncologist)

    assert (alone.patient_id, alone.target) == (patient.pk, "x")
    assert [r.patient_id for r in AccessEventPatient.objects.filter(event=alone)] == [patient.pk]
    assert _verify().startswith("Audit chain intact: 1 event")
    with pytest.raises(ValueError, match="not another one"):
        audit.record(None, AccessAction.EXPORT, patient=patient, listed=[patient.pk, other.pk])


def _text(target: str, action: str = AccessAction.WORKLIST, **row) -> list[int]:
    return chain.text_listed({"patient_id": None, "action": action, "outcome": "success",
                              "target": target, **row})  # fmt: skip


def test_earlier_events_name_their_patients_at_the_end_of_their_text():
    assert audit.patients_text([7, 3, 3]) == "patients 3, 7"
    assert _text("worklist 2026-11-26..2026-12-02: patients 3, 7") == [3, 7]
    escalated = "high results escalated by e-mail: draws 1, 2; patients 3, 7; to users 5, 6"
    assert _text(escalated, AccessAction.ESCALATION) == [3, 7]
    bulk = "results reported before 2026-12-07 acknowledged in bulk: 2 results of 2 patients; "
    assert _text(bulk + "draws 12, 40; patients 3, 7", AccessAction.BULK_ACKNOWLEDGEMENT) == [3, 7]
    # A free-text reason ahead of the list cannot add to it: the list is the text's end.
    assert _text("CSV; reason: x: patients 1, 2: patients 3, 7", AccessAction.EXPORT) == [3, 7]
    assert _text("worklist: patients 3", patient_id=3) == []  # one patient: its column


def test_text_a_client_sent_is_never_read_as_a_list():
    """A refusal's target holds the path the client asked for, which anyone can write."""
    path = "POST /admin/x: patients 1, 2 (CSRF check failed)"
    assert _text(path, AccessAction.PERMISSION_DENIED, outcome="denied") == []
    assert _text("POST /admin/x: patients 1, 2", AccessAction.PERMISSION_DENIED) == []
    assert _text("patient list page 1: patients 1, 2 (search)") == []  # not at the end


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
    assert "patients its text names are missing" in _verify()  # the migration's work

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
        f"Broken at event #{listing}: patients were added to those it showed"
    )


def test_the_previous_releases_events_during_the_upgrade_verify_once_backfilled(nurse, three):
    """During a rolling restart the previous release still writes format 2, with no rows:
    `verify_audit` says what to run, and `backfill_audit_lists` restores them from the
    text (once: running it again adds nothing)."""
    a, b, c = three
    newer = audit.record(None, AccessAction.LOGIN, user=nurse)
    older = _as_format_2(f"worklist: patients {a.pk}, {b.pk}", prev=newer.hash)
    audit.record(None, AccessAction.LOGOUT, user=nurse)
    said = _verify()
    assert said.startswith(f"Broken at event #{older}: patients its text names are missing")
    assert "manage.py backfill_audit_lists" in said

    call_command("backfill_audit_lists", stdout=(first := _Out()))
    call_command("backfill_audit_lists", stdout=(again := _Out()))

    assert (first.text, again.text) == (
        "Added 2 rows of listed patients.\n",
        "Added 0 rows of listed patients.\n",
    )
    assert _verify().startswith("Audit chain intact: 3 events")
    listing_a = AccessEvent.objects.filter(listed_patients__patient=a)
    assert list(listing_a.values_list("pk", flat=True)) == [older]


def test_an_earlier_event_naming_a_patient_not_on_record_verifies(three):
    """Its text may name an id that was never a patient (the rows cannot): the check
    reads what the text names of the patients on record, as the migration did."""
    a, b, c = three
    listing = _as_format_2(f"worklist: patients {a.pk}, {b.pk}, 999999")
    call_command("backfill_audit_lists", stdout=_Out())

    assert _verify().startswith("Audit chain intact: 1 event")
    assert set(
        AccessEventPatient.objects.filter(event_id=listing).values_list("patient", flat=True)
    ) == {a.pk, b.pk}


def test_a_long_report_is_counted_only_as_far_as_its_page_needs(
    client, admin_user, nurse, monkeypatch
):
    monkeypatch.setattr(audit_views, "COUNTED_AHEAD", 5)
    for k in range(60):
        audit.record(None, AccessAction.LOGIN, user=nurse, target=f"sign-in {k}")
    client.force_login(admin_user)

    first = client.get(URL, {"user": nurse.username})
    second = client.get(URL, {"user": nurse.username, "page": 2})

    assert "More than 55 events." in first.content.decode()
    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 10
    assert "60 events." in second.content.decode()  # page 2 reaches the end: the count
