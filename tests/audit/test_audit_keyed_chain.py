"""The keyed chain and its signed checkpoints: what whoever can write the log's table cannot hide.

The attacker here can do anything to the table (switch the triggers off, rewrite
rows, recompute hashes with the published algorithm) but does not hold the audit
key, which lives outside the database. The checkpoints live outside it too.
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from ctctrack import checks
from patients import audit
from patients.audit import chain, checkpoints
from patients.models import AccessEvent

from .test_audit_chain import TABLE, _Out, _sql, _switch_off_the_triggers, _verify

pytestmark = pytest.mark.django_db


def _events(user, n: int = 3) -> list[AccessEvent]:
    return [audit.record(None, "view", user=user, target=f"page {i}") for i in range(n)]


def _fields(event_id: int) -> dict:
    return AccessEvent.objects.values(*chain.CHAIN_FIELDS).get(id=event_id)


def _plain_sha256(fields: dict, chain_format: int) -> str:
    """The hash as someone without the key computes it: the published payload, no secret."""
    payload = {name: fields[name] for name in chain.CHAIN_FIELDS}
    payload["at"] = fields["at"].astimezone(UTC).isoformat(timespec="microseconds")
    payload["format"] = chain_format
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _rewrite_and_rechain(events: list[AccessEvent], *, target: str, as_unkeyed: bool) -> None:
    """Rewrite the first event's target, then re-chain it and every later event without the key."""
    prev = events[0].prev_hash
    for index, event in enumerate(events):
        fields = _fields(event.pk) | {"prev_hash": prev}
        if index == 0:
            fields["target"] = target
        chain_format = chain.UNKEYED_FORMAT if as_unkeyed else chain.CHAIN_FORMAT
        digest = _plain_sha256(fields, chain_format)
        _sql(
            f"UPDATE {TABLE} SET target = %s, prev_hash = %s, hash = %s, chain_format = %s "
            "WHERE id = %s",
            [fields["target"], prev, digest, None if as_unkeyed else chain.CHAIN_FORMAT, event.pk],
        )
        prev = digest


# --- the keyed chain ---------------------------------------------------------------------


def test_every_new_event_is_keyed(nurse):
    (event,) = _events(nurse, 1)

    stored = AccessEvent.objects.values("hash", "chain_format").get(id=event.pk)

    assert stored["chain_format"] == chain.CHAIN_FORMAT
    assert stored["hash"] != _plain_sha256(_fields(event.pk) | {"prev_hash": event.prev_hash}, 2)


def test_a_rewrite_rechained_without_the_key_is_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()

    _rewrite_and_rechain([second, third], target="nothing to see", as_unkeyed=False)

    said = _verify()
    assert said.startswith(f"Broken at event #{second.pk}: ")
    assert "changed after it was written" in said


def test_a_rewrite_rechained_as_events_from_before_the_key_is_found(nurse):
    first, second, third = _events(nurse)
    _switch_off_the_triggers()

    _rewrite_and_rechain([second, third], target="nothing to see", as_unkeyed=True)

    said = _verify()
    assert said.startswith(f"Broken at event #{second.pk}: ")
    assert "not keyed but follows keyed events" in said


def test_events_written_before_the_chain_was_keyed_still_verify(nurse):
    # As a log upgraded from the unkeyed chain holds them: plain SHA-256, no format.
    old = _events(nurse, 2)
    _switch_off_the_triggers()
    _rewrite_and_rechain(old, target="page 0", as_unkeyed=True)
    # The next event chains to the last unkeyed one, keyed.
    (new,) = _events(nurse, 1)

    said = _verify()

    assert said.startswith("Audit chain intact: 3 events")
    assert f"Events up to #{old[-1].pk} were written before the chain was keyed" in said
    assert AccessEvent.objects.get(id=new.pk).chain_format == chain.CHAIN_FORMAT


def test_the_chain_verifies_only_with_the_key_it_was_written_with(nurse):
    _events(nurse)

    with override_settings(CTCTRACK_AUDIT_KEY="another deployment's key"):
        said = _verify()

    assert "the audit key is not the one it was written with" in said
    assert _verify().startswith("Audit chain intact: 3 events")


def test_a_configured_key_is_used_rather_than_one_derived_from_secret_key(nurse):
    with override_settings(CTCTRACK_AUDIT_KEY="a key of its own"):
        _events(nurse, 2)
        assert _verify().startswith("Audit chain intact: 2 events")

    assert "the audit key is not the one" in _verify()


# --- checkpoints ---------------------------------------------------------------------------


def _checkpoint(path) -> str:
    out = _Out()
    call_command("audit_checkpoint", file=str(path), stdout=out)
    return out.text


def _verify_against(path) -> str:
    try:
        call_command("verify_audit", checkpoint_file=str(path), stdout=(out := _Out()))
    except CommandError as exc:
        assert exc.returncode == 1
        return str(exc)
    return out.text


def test_a_checkpoint_is_one_signed_line_naming_the_last_event(nurse, tmp_path):
    events = _events(nurse)
    path = tmp_path / "checkpoints.jsonl"

    said = _checkpoint(path)

    (line,) = path.read_text().splitlines()
    written = json.loads(line)
    assert written["event_id"] == events[-1].pk
    assert written["hash"] == AccessEvent.objects.get(id=events[-1].pk).hash
    assert written["events"] == 3
    assert len(written["signature"]) == 64
    assert said.startswith(f"Checkpoint written: event #{events[-1].pk}, 3 events")
    assert "Checkpoints: all 1 agree with the log" in _verify_against(path)


def test_checkpoints_are_appended_and_each_one_is_checked(nurse, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    _events(nurse)
    _checkpoint(path)
    _events(nurse, 2)
    _checkpoint(path)

    assert len(path.read_text().splitlines()) == 2
    assert "Checkpoints: all 2 agree with the log" in _verify_against(path)


def test_newest_events_cut_off_after_a_checkpoint_are_found(nurse, tmp_path):
    first, second, third = _events(nurse)
    path = tmp_path / "checkpoints.jsonl"
    _checkpoint(path)
    _switch_off_the_triggers()
    _sql(f"DELETE FROM {TABLE} WHERE id >= %s", [second.pk])  # the chain itself still holds

    said = _verify_against(path)

    assert said.startswith("Broken: ")
    assert f"saw event #{third.pk}, which is no longer in the log" in said
    assert _verify().startswith("Audit chain intact: 1 event;")  # without checkpoints, unseen


def test_a_log_rewritten_by_someone_holding_the_key_contradicts_the_checkpoint(nurse, tmp_path):
    first, second, third = _events(nurse)
    path = tmp_path / "checkpoints.jsonl"
    _checkpoint(path)
    _switch_off_the_triggers()
    # With the key, every hash can be recomputed: the chain holds, the checkpoint does not.
    prev = second.prev_hash
    for index, event in enumerate([second, third]):
        fields = _fields(event.pk) | {"prev_hash": prev}
        if index == 0:
            fields["target"] = "nothing to see"
        digest = chain.event_hash(fields)
        _sql(
            f"UPDATE {TABLE} SET target = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [fields["target"], prev, digest, event.pk],
        )
        prev = digest

    said = _verify_against(path)

    assert _verify().startswith("Audit chain intact: 3 events")
    assert f"event #{third.pk} no longer has the hash" in said
    assert "the log was rewritten" in said


def test_an_edited_checkpoint_file_is_refused(nurse, tmp_path):
    _events(nurse)
    path = tmp_path / "checkpoints.jsonl"
    _checkpoint(path)
    written = json.loads(path.read_text())
    written["event_id"] -= 1  # "the log ended earlier": hiding the newest events
    path.write_text(json.dumps(written) + "\n")

    said = _verify_against(path)

    assert "Line 1 of the checkpoints is not signed with this deployment's audit key" in said


def test_a_missing_checkpoint_file_fails_the_check(nurse, tmp_path):
    _events(nurse)

    said = _verify_against(tmp_path / "never-written.jsonl")

    assert "does not exist" in said


def test_no_checkpoint_vouches_for_a_broken_chain(nurse, tmp_path):
    first, second, third = _events(nurse)
    path = tmp_path / "checkpoints.jsonl"
    _checkpoint(path)
    _switch_off_the_triggers()
    _sql(f"UPDATE {TABLE} SET target = 'nothing to see' WHERE id = %s", [third.pk])
    _events(nurse, 1)

    with pytest.raises(CommandError, match=f"No checkpoint written: Broken at event #{third.pk}"):
        _checkpoint(path)

    assert len(path.read_text().splitlines()) == 1


def test_a_second_checkpoint_refuses_when_the_first_one_no_longer_holds(nurse, tmp_path):
    first, second, third = _events(nurse)
    path = tmp_path / "checkpoints.jsonl"
    _checkpoint(path)
    _switch_off_the_triggers()
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [third.pk])
    later = _events(nurse, 2)

    gone = f"event #{third.pk} of the checkpoint .* is no longer in the log"
    with pytest.raises(CommandError, match=gone):
        _checkpoint(path)

    assert later[-1].pk > third.pk
    assert len(path.read_text().splitlines()) == 1


def test_a_checkpoint_goes_to_a_syslog_receiver(nurse):
    _events(nurse)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    host, port = receiver.getsockname()
    try:
        call_command("audit_checkpoint", file="", syslog=f"{host}:{port}", stdout=_Out())
        message = receiver.recv(65536).decode()
    finally:
        receiver.close()

    (checkpoint,) = checkpoints.parse([message])
    assert checkpoint.event_id == AccessEvent.objects.latest("id").pk


def test_a_checkpoint_needs_somewhere_to_go(nurse):
    _events(nurse)

    with pytest.raises(CommandError, match="Say where the checkpoint goes"):
        call_command("audit_checkpoint", file="", stdout=_Out())


# --- the deployment checks -----------------------------------------------------------------


def test_production_without_an_audit_key_of_its_own_is_warned():
    with override_settings(CTCTRACK_AUDIT_KEY=""):
        (warning,) = checks.check_audit_key(None)
    with override_settings(CTCTRACK_AUDIT_KEY="a key of its own"):
        assert checks.check_audit_key(None) == []

    assert warning.id == "ctctrack.W003"
    assert "rotating SECRET_KEY" in warning.msg


def test_a_role_limited_as_docs_audit_says_raises_no_warning():
    limited = {
        "owns": [],
        "held": {
            ("patients_accessevent", "UPDATE"): False,
            ("patients_accessevent", "DELETE"): False,
            ("patients_accessevent", "TRUNCATE"): False,
            ("patients_accesseventpatient", "DELETE"): False,
            ("patients_audit_maintenance", "INSERT"): False,
        },
    }

    assert checks.audit_log_privilege_problems(limited) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL roles only")
def test_the_owner_role_is_warned_that_it_can_rewrite_the_log():
    said = [w.msg for w in checks.check_audit_log_privileges(None, databases=["default"])]

    assert any("owns patients_accessevent," in msg for msg in said)
    assert any("owns patients_accesseventpatient," in msg for msg in said)
    assert any("may UPDATE, DELETE, TRUNCATE patients_accessevent." in msg for msg in said)
    assert any("may UPDATE, DELETE, TRUNCATE patients_accesseventpatient." in msg for msg in said)
    assert any("patients_audit_maintenance" in msg for msg in said)
    # The REVOKE statements of docs/audit.md take the privileges away (ownership stays).
    _sql(
        "REVOKE UPDATE, DELETE, TRUNCATE ON patients_accessevent, patients_accesseventpatient "
        "FROM CURRENT_USER"
    )
    _sql("REVOKE ALL ON patients_audit_maintenance FROM CURRENT_USER")
    after = [w.msg for w in checks.check_audit_log_privileges(None, databases=["default"])]
    assert len(after) == 2 and all("owns patients_accessevent" in msg for msg in after)


def test_the_privilege_check_runs_only_when_asked_for_the_database():
    assert checks.check_audit_log_privileges(None, databases=None) == []
