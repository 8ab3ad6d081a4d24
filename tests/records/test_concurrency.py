"""Two clinicians change the same draw at once: one wins, the other is told, nothing is lost.

Both editors read version 1 of the draw before either saves (a barrier holds
them there), then both save. On PostgreSQL the two saves really run at the
same time on two connections, and the row lock in `services.records._lock` orders
them. SQLite allows one writer at a time (its shared in-memory test database
answers "table is locked" instead of waiting), so there the saves are made
to queue, as SQLite's own lock would queue them; the outcome asserted is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from patients import assessment, rules, services
from patients.models import CTCDraw, TreatmentCycle
from tests import builders
from tests.paths import DATA

ORIGINAL_COUNT = 3  # the `draw` fixture's count
_SQLITE_WRITER = threading.Lock()


@contextmanager
def one_writer_at_a_time_on_sqlite() -> Iterator[None]:
    if connection.vendor != "sqlite":
        yield
        return
    with _SQLITE_WRITER:
        yield


def run_together(*editors: Callable[[threading.Barrier], Any]) -> list[Any]:
    """Run each editor in its own thread (own connection); what each returned or raised."""
    barrier = threading.Barrier(len(editors), timeout=30)
    outcomes: list[Any] = [None] * len(editors)

    def run(index: int, editor: Callable[[threading.Barrier], Any]) -> None:
        try:
            outcomes[index] = editor(barrier)
        except Exception as exc:  # the outcome under test, e.g. ConflictError
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(editors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "an editor never finished"
    return outcomes


def counts_in_history(draw: CTCDraw) -> list[int]:
    return [h.ctc_count for h in draw.history.order_by("history_date", "history_id")]


# --- through the service ------------------------------------------------------------------


def service_editor(draw_pk: int, user: Any, count: int) -> Callable[[threading.Barrier], Any]:
    def edit(barrier: threading.Barrier) -> Any:
        shown = CTCDraw.objects.get(pk=draw_pk)  # what the editor's screen shows
        barrier.wait()
        with one_writer_at_a_time_on_sqlite():
            return services.update_draw(
                draw=shown,
                by=user,
                changes={"ctc_count": count},
                version=shown.version,
                reason=f"Recounted: {count}",
            )

    return edit


@pytest.mark.django_db(transaction=True)
def test_two_service_edits_of_one_draw_save_one_and_refuse_the_other(draw, oncologist):
    outcomes = run_together(
        service_editor(draw.pk, oncologist, 11), service_editor(draw.pk, oncologist, 22)
    )

    (winner,) = [o for o in outcomes if isinstance(o, CTCDraw)]
    (loser,) = [o for o in outcomes if isinstance(o, services.ConflictError)]
    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (winner.ctc_count, 2)
    assert (loser.based_on, loser.current) == (1, 2)
    assert "changed by someone else" in str(loser)
    assert counts_in_history(draw) == [ORIGINAL_COUNT, winner.ctc_count]


# --- through the API ----------------------------------------------------------------------


def api_editor(draw_pk: int, user: Any, count: int) -> Callable[[threading.Barrier], Any]:
    def edit(barrier: threading.Barrier) -> Any:
        api = APIClient()
        api.force_authenticate(user)
        with one_writer_at_a_time_on_sqlite():  # a read writes its access-log event
            shown = api.get(f"/api/v1/draws/{draw_pk}/").json()
        barrier.wait()
        body = {"ctc_count": count, "version": shown["version"], "reason": "Recounted"}
        with one_writer_at_a_time_on_sqlite():
            return api.patch(f"/api/v1/draws/{draw_pk}/", body, format="json")

    return edit


@pytest.mark.django_db(transaction=True)
def test_two_api_edits_of_one_draw_save_one_and_answer_409_to_the_other(draw, oncologist):
    outcomes = run_together(
        api_editor(draw.pk, oncologist, 11), api_editor(draw.pk, oncologist, 22)
    )

    assert sorted(r.status_code for r in outcomes) == [200, 409], [r.content for r in outcomes]
    (won,) = [r.json() for r in outcomes if r.status_code == 200]
    (lost,) = [r.json() for r in outcomes if r.status_code == 409]
    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (won["ctc_count"], 2)
    assert lost["current_version"] == 2
    assert "changed by someone else" in lost["version"][0]
    (missed,) = lost["changes_since_your_version"]
    assert missed["changes"] == [
        {"field": "CTC count (cells in the sample)", "old": "3", "new": str(won["ctc_count"])}
    ]
    assert counts_in_history(draw) == [ORIGINAL_COUNT, won["ctc_count"]]


# --- through the form ---------------------------------------------------------------------


def _typed(count: int, comment: str) -> dict[str, str]:
    return {
        "drawn_at": "2026-01-02T09:30",
        "blood_volume_ml": "7.50",
        "status": "resulted",
        "ctc_count": str(count),
        "accession": "ACC-1",
        "comment": comment,
        "reason": "Recounted",
        "version": "1",
    }


@pytest.mark.django_db
def test_the_second_form_editor_is_told_and_keeps_what_they_typed(
    client, draw, oncologist, django_user_model
):
    colleague = django_user_model.objects.create_user("omar", password="correct-horse-42")
    colleague.groups.set(oncologist.groups.all())
    second = Client()
    client.force_login(oncologist)
    second.force_login(colleague)
    url = f"/draws/{draw.pk}/edit/"
    client.get(url)
    second.get(url)

    first_save = client.post(url, _typed(11, "First recount"))
    second_save = second.post(url, _typed(22, "Second recount by Omar"))

    assert first_save.status_code == 302
    assert second_save.status_code == 400
    page = second_save.content.decode()
    assert "changed by someone else" in page
    assert 'value="22"' in page and "Second recount by Omar" in page
    # What changed, by whom and why, so Omar can decide without reloading.
    changed = page[page.index("Changed since you opened this form") :]
    assert oncologist.username in changed and "Recounted" in changed
    assert "<strong>CTC count (cells in the sample)</strong> 3 → 11" in changed
    draw.refresh_from_db()
    assert (draw.ctc_count, draw.comment, draw.version) == (11, "First recount", 2)
    assert counts_in_history(draw) == [ORIGINAL_COUNT, 11]
    # The kept form is now based on version 2: saving again applies Omar's count knowingly.
    assert 'name="version" value="2"' in page
    resave = second.post(url, _typed(22, "Second recount by Omar") | {"version": "2"})
    assert resave.status_code == 302
    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (22, 3)
    assert counts_in_history(draw) == [ORIGINAL_COUNT, 11, 22]


# --- two lab messages with the same accession -------------------------------------------------

HL7_RESULT = (DATA / "hl7" / "oru_r01_final.hl7").read_bytes()


def lab_sender(user: Any) -> Callable[[threading.Barrier], Any]:
    def send(barrier: threading.Barrier) -> Any:
        api = APIClient()
        api.force_authenticate(user)
        barrier.wait()
        with one_writer_at_a_time_on_sqlite():
            return api.generic(
                "POST", "/api/v1/hl7/oru/", data=HL7_RESULT, content_type="text/plain"
            )

    return send


@pytest.mark.django_db(transaction=True)
def test_one_lab_result_sent_twice_at_once_is_stored_once_and_both_get_an_answer(
    patient, oncologist
):
    outcomes = run_together(lab_sender(oncologist), lab_sender(oncologist))

    assert [r.status_code for r in outcomes] == [200, 200], [r.content for r in outcomes]
    acks = [r.content.decode().split("MSA|")[1].split("|")[0] for r in outcomes]
    # One stores it; the other either sees it stored (a resend: AA, nothing changed) or,
    # on PostgreSQL, meets the unique accession mid-way and is asked to send again (AE).
    assert "AA" in acks and set(acks) <= {"AA", "AE"}, acks
    for response, ack in zip(outcomes, acks, strict=True):
        if ack == "AE":
            assert "at the same moment" in response.content.decode()
    draw = CTCDraw.objects.get()
    assert (draw.accession, draw.ctc_count) == ("CS-26-0101", 7)
    assert draw.history.count() == 1


# --- a result arriving while someone acknowledges --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_result_arriving_during_an_acknowledgement_is_ranked_with_both_in_view(
    patient, cycle, oncologist, nurse, monkeypatch
):
    """The acknowledgement assesses the patient, then stores the ranks from that
    assessment. A new result saved in between must not be ranked away: the two writes
    of one patient are ordered, and the later one ranks with both in view."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: two writes never interleave there")
    builders.draw(patient, oncologist, drawn_at=datetime(2025, 12, 1, 9, tzinfo=UTC), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 1, 9, tzinfo=UTC), ctc_count=9)
    assessed, go_on = threading.Event(), threading.Event()
    series_for = assessment.series_for

    def assess_then_wait(patient: Any) -> assessment.PatientSeries:
        found = series_for(patient)
        if threading.current_thread().name == "acknowledging":
            assessed.set()
            go_on.wait(timeout=30)
        return found

    monkeypatch.setattr(assessment, "series_for", assess_then_wait)
    errors: list[Exception] = []

    def in_thread(write: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                write()
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        return run

    acknowledging = threading.Thread(
        target=in_thread(lambda: services.acknowledge_cycle(cycle=cycle, by=nurse, note="Seen")),
        name="acknowledging",
    )
    recording = threading.Thread(
        target=in_thread(
            lambda: builders.draw(  # a newer sample in the cycle's window: not seen
                patient, oncologist, drawn_at=datetime(2026, 1, 4, 9, tzinfo=UTC), ctc_count=40
            )
        )
    )
    acknowledging.start()
    assert assessed.wait(timeout=30)
    recording.start()
    recording.join(timeout=2)  # it may finish now, or wait for the acknowledgement
    go_on.set()
    for thread in (acknowledging, recording):
        thread.join(timeout=60)
    assert errors == []

    cycle = TreatmentCycle.objects.select_related("therapy_line__patient").get(pk=cycle.pk)
    series = series_for(cycle.therapy_line.patient)
    found = series.cycle_assessment(cycle)
    assert not series.cycle_acknowledged(found)  # the newer sample's flags are not covered
    assert cycle.rank_after_day_1 == rules.cycle_rank(found, False) == 0  # high, waiting
