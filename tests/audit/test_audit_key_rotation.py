"""Rotating the audit key: the events and checkpoints of the retired key still verify,
and whoever still holds it (the reason to rotate) cannot add events after the rotation."""

from __future__ import annotations

import json

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from patients.audit import chain
from patients.models import AccessEvent

from .test_audit_chain import TABLE, _events, _sql, _switch_off_the_triggers, _verify
from .test_audit_keyed_chain import _checkpoint, _fields, _verify_against

pytestmark = pytest.mark.django_db

FIRST, SECOND = "the first key of its own", "the key it was rotated to"
# The deployment before and after the rotation; "" labels the key from before labels.
BEFORE = override_settings(CTCTRACK_AUDIT_KEY=FIRST, CTCTRACK_AUDIT_KEY_ID="")
AFTER = override_settings(
    CTCTRACK_AUDIT_KEY=SECOND,
    CTCTRACK_AUDIT_KEY_ID="2027-01",
    CTCTRACK_AUDIT_RETIRED_KEYS=json.dumps({"": FIRST}),
)


def test_events_of_the_retired_key_and_of_the_new_one_verify_together(nurse):
    with BEFORE:
        before = _events(nurse, 2)
    with AFTER:
        after = _events(nurse, 2)
        said = _verify()

    assert said.startswith("Audit chain intact: 4 events"), said
    labels = dict(AccessEvent.objects.values_list("id", "key_id"))
    assert [labels[e.pk] for e in before + after] == [None, None, "2027-01", "2027-01"]


def test_without_the_retired_key_its_events_cannot_be_verified(nurse):
    with BEFORE:
        (first,) = _events(nurse, 1)
    with AFTER:
        _events(nurse, 1)
    rotated_without_retiring = override_settings(
        CTCTRACK_AUDIT_KEY=SECOND, CTCTRACK_AUDIT_KEY_ID="2027-01"
    )

    with rotated_without_retiring:
        said = _verify()

    # "": with no retired key given, the key derived from SECRET_KEY, which this log never used.
    assert said.startswith(f"Broken at event #{first.pk}"), said
    assert "the audit key is not the one it was written with" in said


def test_an_event_keyed_with_an_unknown_label_is_named(nurse):
    with AFTER:
        (event,) = _events(nurse, 1)

    with override_settings(CTCTRACK_AUDIT_KEY=SECOND, CTCTRACK_AUDIT_KEY_ID="2027-02"):
        said = _verify()

    assert said.startswith(f"Broken at event #{event.pk}")
    assert "keyed with the audit key labelled '2027-01', which is not configured" in said


def test_an_event_added_after_the_rotation_with_the_retired_key_is_found(nurse):
    """Whoever kept the retired key writes an event at the end of the log, keyed with
    it and chained properly: the chain refuses a key older than the one before it."""
    with AFTER:
        (last,) = _events(nurse, 1)
    _switch_off_the_triggers()
    forged = _fields(last.pk) | {"prev_hash": last.hash, "target": "forged"}
    digest = chain.event_hash(forged, key=FIRST.encode())
    _sql(
        f"INSERT INTO {TABLE} (at, user_id, username, patient_id, action, target, outcome, "
        "client_address, prev_hash, hash, chain_format, key_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL)",
        [forged[f] for f in chain.CHAIN_FIELDS] + [digest, chain.CHAIN_FORMAT],
    )

    with AFTER:
        said = _verify()

    assert "keyed with the retired audit key labelled '' but follows events keyed with a newer" in (
        said
    )


def test_relabelling_an_event_breaks_the_chain(nurse):
    with BEFORE:
        (event,) = _events(nurse, 1)
    _switch_off_the_triggers()
    _sql(f"UPDATE {TABLE} SET key_id = '2027-01' WHERE id = %s", [event.pk])

    with AFTER:
        said = _verify()

    assert said.startswith(f"Broken at event #{event.pk}")


def test_a_checkpoint_signed_before_the_rotation_still_verifies_after_it(nurse, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    with BEFORE:
        _events(nurse, 2)
        _checkpoint(path)
    with AFTER:
        _events(nurse, 1)
        _checkpoint(path)  # the rotation's checkpoint: signed with the new key
        said = _verify_against(path)

    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert (first["key_id"], second["key_id"]) == ("", "2027-01")
    assert "Checkpoints: all 2 agree with the log" in said, said


def test_a_checkpoint_of_an_unconfigured_key_is_refused_naming_its_label(nurse, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    with AFTER:
        _events(nurse, 1)
        _checkpoint(path)

    with override_settings(CTCTRACK_AUDIT_KEY="yet another", CTCTRACK_AUDIT_KEY_ID="2028-01"):
        said = _verify_against(path)

    assert "signed with the audit key labelled '2027-01', which is not configured" in said


@pytest.mark.parametrize(
    ("settings_", "says"),
    [
        ({"CTCTRACK_AUDIT_RETIRED_KEYS": "{not json"}, "CTCTRACK_AUDIT_RETIRED_KEYS is not JSON"),
        ({"CTCTRACK_AUDIT_RETIRED_KEYS": '["a list"]'}, "must be a JSON object of labels"),
        ({"CTCTRACK_AUDIT_RETIRED_KEYS": '{"old": ""}'}, "must be a JSON object of labels"),
        (
            {
                "CTCTRACK_AUDIT_KEY": SECOND,
                "CTCTRACK_AUDIT_KEY_ID": "2027-01",
                "CTCTRACK_AUDIT_RETIRED_KEYS": '{"2027-01": "x"}',
            },
            "holds the current key's label '2027-01'",
        ),
        ({"CTCTRACK_AUDIT_KEY": "", "CTCTRACK_AUDIT_KEY_ID": "2027-01"}, "is not set"),
        ({"CTCTRACK_AUDIT_KEY": SECOND, "CTCTRACK_AUDIT_KEY_ID": "x" * 41}, "longer than 40"),
    ],
)
def test_a_mistaken_key_setting_stops_the_start_naming_the_setting(settings_, says):
    with override_settings(**settings_):
        found = [m for m in run_checks() if m.id == "ctctrack.E009"]

    assert found and says in found[0].msg + (found[0].hint or ""), found


def test_the_rotated_settings_raise_no_error():
    with AFTER:
        assert [m for m in run_checks() if m.id == "ctctrack.E009"] == []


def test_verify_audit_says_which_key_signs_which_events(nurse):
    with BEFORE:
        before = _events(nurse, 2)
    with AFTER:
        after = _events(nurse, 1)
        said = _verify()

    assert (
        f"Keyed with the audit key labelled '': 2 events, #{before[0].pk} to #{before[1].pk}."
        in (said)
    )
    assert f"Keyed with the audit key labelled '2027-01': 1 event, #{after[0].pk} to" in said


def test_verify_audit_names_a_retired_key_that_signs_no_event_left(nurse):
    with AFTER:
        _events(nurse, 1)
    retired_twice = override_settings(
        CTCTRACK_AUDIT_KEY="the third key",
        CTCTRACK_AUDIT_KEY_ID="2028-01",
        CTCTRACK_AUDIT_RETIRED_KEYS=json.dumps({"": FIRST, "2027-01": SECOND}),
    )

    with retired_twice:
        said = _verify()

    assert said.startswith("Audit chain intact: 1 event"), said
    assert "The retired audit key labelled '' keys no event left in the log" in said
    assert "labelled '2027-01' keys no event" not in said


def test_a_log_never_rotated_says_nothing_of_keys(nurse):
    with BEFORE:
        _events(nurse, 2)
        said = _verify()

    assert "audit key labelled" not in said
