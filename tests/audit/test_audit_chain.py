"""The access log cannot be changed, and `verify_audit` finds where someone did.

Append-only at three levels: the model, its QuerySet and (through triggers)
the database. The tamper tests then do what someone with the database
owner's rights could: switch the triggers off, change rows with raw SQL,
and expect `verify_audit` to name the first broken link.
"""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from patients import audit
from patients.audit import chain
from patients.models import AccessEvent, AccessEventPatient, AuditLogIsAppendOnly

pytestmark = pytest.mark.django_db

TABLE = "patients_accessevent"


def _events(user, n: int = 3) -> list[AccessEvent]:
    return [audit.record(None, "view", user=user, target=f"page {i}") for i in range(n)]


def _sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _switch_off_the_triggers() -> None:
    """What an attacker with the owner's rights does first (undone with the test's rollback)."""
    if connection.vendor == "postgresql":
        _sql("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred FK check
        _sql(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
    else:
        _sql("DROP TRIGGER accessevent_no_update")
        _sql("DROP TRIGGER accessevent_no_delete")


def _verify() -> str:
    """What verify_audit says; a broken chain raises CommandError (exit status 1)."""
    try:
        call_command("verify_audit", stdout=(out := _Out()))
    except CommandError as exc:
        assert exc.returncode == 1
        return str(exc)
    return out.text


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


# --- the model and its QuerySet --------------------------------------------------------


def test_an_event_cannot_be_saved_again(nurse):
    (event,) = _events(nurse, 1)
    event.target = "something else"

    with pytest.raises(AuditLogIsAppendOnly):
        event.save()


def test_an_event_cannot_be_deleted(nurse):
    (event,) = _events(nurse, 1)

    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()


@pytest.mark.parametrize(
    "change",
    [
        lambda events: events.update(target="x"),
        lambda events: events.delete(),
        lambda events: events.bulk_update(list(events), ["target"]),
    ],
    ids=["update", "delete", "bulk_update"],
)
def test_the_queryset_refuses_bulk_changes(nurse, change):
    _events(nurse)

    with pytest.raises(AuditLogIsAppendOnly):
        change(AccessEvent.objects.all())

    assert AccessEvent.objects.filter(target="x").count() == 0


def test_an_event_is_written_only_through_record(nurse):
    with pytest.raises(ValueError, match="audit.record"):
        AccessEvent(user=nurse, action="view").save()


def test_a_user_with_events_cannot_be_deleted(nurse):
    _events(nurse, 1)

    with pytest.raises(ProtectedError):
        nurse.delete()


# --- the database ---------------------------------------------------------------------


def test_the_database_refuses_an_update_by_raw_sql(nurse):
    _events(nurse, 1)

    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        _sql(f"UPDATE {TABLE} SET target = 'nothing to see'")

    assert not AccessEvent.objects.filter(target="nothing to see").exists()


def test_the_database_refuses_a_delete_by_raw_sql(nurse):
    _events(nurse, 2)

    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        _sql(f"DELETE FROM {TABLE}")

    assert AccessEvent.objects.count() == 2


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite has no TRUNCATE")
def test_postgresql_refuses_a_truncate(nurse):
    _events(nurse, 1)

    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE waits for no deferred FK check
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        _sql(f"TRUNCATE {TABLE} CASCADE")  # and the patients its events listed
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        _sql(f"TRUNCATE {AccessEventPatient._meta.db_table}")

    assert AccessEvent.objects.count() == 1


def test_two_events_cannot_chain_to_the_same_event(nurse):
    (first,) = _events(nurse, 1)
    second = AccessEvent(user=nurse, action="view", at=first.at, prev_hash=first.hash)
    second.hash = chain.event_hash({f: getattr(second, f) for f in chain.CHAIN_FIELDS})
    _events(nurse, 1)  # already chained to `first`

    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_log_and_leaves_it_guarded(django_user_model):
    user = django_user_model.objects.create_user("ada", password="correct-horse-42")
    _events(user, 2)

    call_command("flush", interactive=False, verbosity=0)

    assert AccessEvent.objects.count() == 0
    _sql("SELECT 1")  # the connection is fine
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM patients_audit_maintenance")
        assert cursor.fetchone()[0] == 0  # the guard is back


# --- the chain ---------------------------------------------------------------------------


def test_an_intact_chain_is_reported_with_its_length_and_last_hash(nurse):
    events = _events(nurse)

    said = _verify()

    assert said.startswith("Audit chain intact: 3 events")
    assert f"#{events[-1].pk}, hash {events[-1].hash}" in said


def test_an_empty_log_is_intact():
    assert _verify().strip() == "Audit chain intact: 0 events"


def test_each_event_chains_to_the_one_before(nurse):
    first, second, third = _events(nurse)

    assert first.prev_hash == chain.GENESIS_HASH
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert len(first.hash) == 64 and int(first.hash, 16) >= 0


def test_an_edited_event_is_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()

    _sql(f"UPDATE {TABLE} SET target = 'nothing to see' WHERE id = %s", [second.pk])

    said = _verify()
    assert said.startswith(f"Broken at event #{second.pk}: ")
    assert "changed after it was written" in said


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()
    forged = {f: getattr(second, f) for f in chain.CHAIN_FIELDS} | {"user_id": None}
    _sql(
        f"UPDATE {TABLE} SET user_id = NULL, hash = %s WHERE id = %s",
        [chain.event_hash(forged), second.pk],
    )

    said = _verify()

    assert said.startswith(f"Broken at event #{third.pk}: it does not follow event #{second.pk}")


def test_a_deleted_event_is_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()

    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [second.pk])

    said = _verify()
    assert said.startswith(f"Broken at event #{third.pk}: it does not follow event #{first.pk}")
    assert "deleted" in said


def test_deleting_the_first_events_is_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()

    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [first.pk])

    assert _verify().startswith(f"Broken at event #{second.pk}: it is the first event")


def test_reordered_events_are_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()

    # Swap the ids of the last two events, so the chain reads first, third, second.
    _sql(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [third.pk + 1000, second.pk])
    _sql(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [second.pk, third.pk])
    _sql(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [third.pk, third.pk + 1000])

    assert _verify().startswith(f"Broken at event #{second.pk}: it does not follow")


def test_an_inserted_event_is_found(nurse):
    first, second, third = _events(nurse)

    _sql(
        f"INSERT INTO {TABLE} (at, username, action, target, outcome, prev_hash, hash, "
        "chain_format) VALUES (%s, 'mallory', 'view', 'made up', 'success', %s, %s, %s)",
        [third.at, third.hash, "f" * 64, chain.CHAIN_FORMAT],
    )

    assert "changed after it was written" in _verify()


def test_verify_audit_exits_with_status_1_naming_the_broken_event(nurse, capsys):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()
    _sql(f"UPDATE {TABLE} SET username = 'someone else' WHERE id = %s", [first.pk])

    with pytest.raises(SystemExit) as exit_:
        execute_from_command_line(["manage.py", "verify_audit"])

    assert exit_.value.code == 1
    assert f"Broken at event #{first.pk}: " in capsys.readouterr().err


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="SQLite lets one connection write at a time; the unique prev_hash test covers it",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain(django_user_model):
    user = django_user_model.objects.create_user("ada", password="correct-horse-42")
    errors: list[BaseException] = []

    def write_ten() -> None:
        try:
            for i in range(10):
                audit.record(None, "view", user=user, target=f"page {i}")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write_ten) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert AccessEvent.objects.count() == 40
    assert chain.verify_chain() is None


def test_events_cut_off_after_an_anchored_hash_are_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()
    _sql(f"DELETE FROM {TABLE} WHERE id >= %s", [second.pk])  # the chain itself still holds

    plain = _verify()
    with pytest.raises(CommandError, match="no event has the anchor hash"):
        call_command("verify_audit", anchor=third.hash)

    assert plain.startswith("Audit chain intact: 1 event;")


def test_a_log_whose_old_events_were_archived_verifies_from_the_archived_hash(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [first.pk])  # archived elsewhere, then removed
    out = _Out()

    call_command("verify_audit", after=first.hash, anchor=third.hash, stdout=out)

    assert out.text.startswith("Audit chain intact: 2 events")
    with pytest.raises(CommandError, match="does not follow the hash it must follow"):
        call_command("verify_audit", after=second.hash)
