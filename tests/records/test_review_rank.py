"""The stored ranks: the database sorts the worklist and the results to review as the rules do.

Each cycle stores `rules.cycle_rank` for each phase of its pre-cycle window (before
it opens, from then to day 1, after day 1: `rules.phase_days`) and the day the
window opens; the tube that stands for a result needing review stores its
severity and whether it is acknowledged. They are only right if every write the
rules read refreshes them (acknowledgements included), and if the database's
order on any day is the order the live assessment gives on that day: both are
checked here, the latter over random small cohorts.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, migrations
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from patients import assessment, rules, services
from patients.assessment.results import waiting
from patients.models import Acknowledgement, CTCDraw, Patient, TreatmentCycle
from tests import builders
from tests.fuzzing import rolled_back
from tests.paths import DATA

pytestmark = pytest.mark.django_db

# A cycle's rank (`rules.cycle_rank`): high and review flags nobody acknowledged first...
HIGH, REVIEW = 0, 1
# ...then everything else: acknowledged high and review, info, a draw due, nothing.
SEEN_HIGH, SEEN_REVIEW, INFO, DRAW_DUE, NOTHING = 5, 6, 7, 8, 9
# A cycle with no tube in its window: nothing before it opens, a draw due in it, then missing.
NO_DRAW = (NOTHING, DRAW_DUE, REVIEW)
NOT_A_RESULT_TO_REVIEW = (None, False)

DAY1 = date(2026, 3, 3)  # the cycle's day 1: its pre-cycle window is 24 Feb to 3 Mar
OPENS = DAY1 - timedelta(days=7)
MIGRATION = "0010_rules_v2_ranks_and_result_acknowledgements"


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# --- stored and live -----------------------------------------------------------------------


def _stored(cycle: TreatmentCycle) -> tuple[int, int, int]:
    return TreatmentCycle.objects.values_list(
        "rank_before_window", "rank_in_window", "rank_after_day_1"
    ).get(pk=cycle.pk)


def _rank_on(series: assessment.PatientSeries, cycle: TreatmentCycle, today: date) -> int:
    found = series.cycle_assessment(cycle, today)
    return rules.cycle_rank(found, series.cycle_acknowledged(found))


def _live_ranks(series: assessment.PatientSeries, cycle: TreatmentCycle) -> tuple[int, ...]:
    days = rules.phase_days(assessment.cycle_in(cycle), settings.CTC_PRE_CYCLE_WINDOW_DAYS)
    return tuple(_rank_on(series, cycle, day) for day in days)


def _live(cycle: TreatmentCycle) -> tuple[int, ...]:
    cycle = TreatmentCycle.objects.select_related("therapy_line__patient").get(pk=cycle.pk)
    return _live_ranks(assessment.series_for(cycle.therapy_line.patient), cycle)


def _stored_result(draw: CTCDraw) -> tuple[int | None, bool]:
    return CTCDraw.objects.values_list("review_rank", "review_acknowledged").get(pk=draw.pk)


def _live_result_of(series: assessment.PatientSeries, draw: CTCDraw) -> tuple[int | None, bool]:
    """The tube's place in the results to review, from the live assessment: a rank only on
    the tube that stands for a result needing review (a sample's first, a lone failed one)."""
    found = series.by_draw_id.get(draw.pk)  # None: entered in error
    if found is None or not found.needs_review:
        return NOT_A_RESULT_TO_REVIEW
    if found.sample is not None and found.sample.sample.key != draw.pk:
        return NOT_A_RESULT_TO_REVIEW  # another tube stands for the sample
    severity = rules.highest_severity(found.flags)
    return (rules.SEVERITY_ORDER[severity], series.result_acknowledged(found))


def _live_result(draw: CTCDraw) -> tuple[int | None, bool]:
    draw = CTCDraw.objects.select_related("patient").get(pk=draw.pk)
    return _live_result_of(assessment.series_for(draw.patient), draw)


def _every_stored_rank_is_live() -> None:
    wrong = []
    for series in assessment.series_for_many(Patient.objects.all()).values():
        for c in series.cycles:
            stored = (c.rank_before_window, c.rank_in_window, c.rank_after_day_1, c.window_opens)
            live = (*_live_ranks(series, c), series.cycle_assessment(c).window[0])
            if stored != live:
                wrong.append(("cycle", c.pk, stored, live))
        for d in series.all_draws():  # those entered in error too
            stored_result = (d.review_rank, d.review_acknowledged)
            if stored_result != _live_result_of(series, d):
                wrong.append(("draw", d.pk, stored_result, _live_result_of(series, d)))
    assert wrong == [], "(kind, id, stored, live)"


@pytest.fixture
def due(line, oncologist) -> TreatmentCycle:
    return builders.cycle(line, oncologist, number=3, scheduled_date=DAY1)


@pytest.fixture
def converted(patient, oncologist) -> CTCDraw:
    """A clear conversion to unfavourable in the window of `due`: a high flag."""
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    return builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=9)


# --- every kind of write refreshes them -------------------------------------------------------


def test_a_planned_cycle_without_a_draw_is_ranked_for_each_phase_from_the_start(due):
    assert _stored(due) == NO_DRAW == _live(due)
    assert TreatmentCycle.objects.get(pk=due.pk).window_opens == OPENS


def test_adding_a_draw_refreshes_the_ranks(due, patient, oncologist):
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=1)

    assert _stored(due) == (NOTHING,) * 3 == _live(due)  # a favourable first sample: no flag
    assert _stored_result(draw) == NOT_A_RESULT_TO_REVIEW == _live_result(draw)


def test_a_pending_tube_and_its_result_refresh_the_ranks(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    pending = builders.draw(
        patient, oncologist, drawn_at=DAY1 - timedelta(3), status="pending", ctc_count=None
    )
    assert _stored(due) == (NOTHING,) * 3 == _live(due)  # result pending: a state, no flag

    services.update_draw(
        draw=pending,
        version=builders.version_of(pending),
        by=oncologist,
        changes={"status": "resulted", "ctc_count": 9},
        reason="Result arrived",
    )

    assert _stored(due) == (HIGH,) * 3 == _live(due)
    assert _stored_result(pending) == (HIGH, False) == _live_result(pending)


def test_editing_a_draw_refreshes_the_ranks(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=2)
    assert _stored(due) == (NOTHING,) * 3

    services.update_draw(
        draw=draw,
        version=builders.version_of(draw),
        by=oncologist,
        changes={"ctc_count": 9},
        reason="Typo",
    )

    assert _stored(due) == (HIGH,) * 3 == _live(due)  # converted to unfavourable, clearly
    assert _stored_result(draw) == (HIGH, False) == _live_result(draw)


def test_marking_a_draw_entered_in_error_refreshes_the_ranks(due, patient, oncologist):
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=9)
    assert _stored(due) == (REVIEW,) * 3  # unfavourable at baseline
    assert _stored_result(draw) == (REVIEW, False)

    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong patient"
    )

    assert _stored(due) == NO_DRAW == _live(due)  # no tube in the window any more
    assert _stored_result(draw) == NOT_A_RESULT_TO_REVIEW == _live_result(draw)


def test_delaying_a_cycle_refreshes_its_ranks_and_the_later_ones(due, line, patient, oncologist):
    later = builders.cycle(line, oncologist, number=4, scheduled_date=DAY1 + timedelta(21))
    # Each in the window its cycle has after the delay (from 3 to 10 March, from 24 to 31
    # March, whether or not the window also keeps its original opening), in none before.
    builders.draw(patient, oncologist, drawn_at=DAY1 + timedelta(5), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=DAY1 + timedelta(28), ctc_count=1)
    assert (_stored(due), _stored(later)) == (NO_DRAW, NO_DRAW)

    services.delay_cycle_and_following(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        new_date=DAY1 + timedelta(10),
        reason="Neutropenia",
    )

    assert _stored(due) == (NOTHING,) * 3 == _live(due)
    assert _stored(later) == (NOTHING,) * 3 == _live(later)
    _every_stored_rank_is_live()  # window_opens included


def test_cancelling_a_cycle_refreshes_its_ranks(due, oncologist):
    services.update_cycle(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        changes={"status": "cancelled", "status_reason": "Stopped for toxicity"},
    )

    assert _stored(due) == (NOTHING,) * 3 == _live(due)  # nothing is owed before it


def test_a_given_cycle_keeps_its_evaluation(due, oncologist):
    services.update_cycle(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        changes={"status": "given", "given_date": DAY1},
    )

    assert _stored(due) == NO_DRAW == _live(due)  # "given with no pre-cycle result"


def test_acknowledging_a_cycle_moves_it_and_its_sample_into_the_acknowledged(due, converted, nurse):
    assert _stored(due) == (HIGH,) * 3
    assert _stored_result(converted) == (HIGH, False)

    services.acknowledge_cycle(cycle=due, by=nurse, note="Oncologist informed")

    assert _stored(due) == (SEEN_HIGH,) * 3 == _live(due)  # still high, no longer waiting
    assert _stored_result(converted) == (HIGH, True) == _live_result(converted)


def test_acknowledging_a_result_moves_it_and_its_cycle_into_the_acknowledged(due, converted, nurse):
    services.acknowledge_result(draw=converted, by=nurse, note="Oncologist informed")

    assert _stored_result(converted) == (HIGH, True) == _live_result(converted)
    assert _stored(due) == (SEEN_HIGH,) * 3 == _live(due)


def test_acknowledging_a_missing_draw_covers_the_phase_it_was_seen_in(due, nurse):
    services.acknowledge_cycle(cycle=due, by=nurse, note="Patient unwell, no draw possible")

    # Acknowledged after day 1, when the draw was missing: before then nothing waited.
    assert _stored(due) == (NOTHING, DRAW_DUE, SEEN_REVIEW) == _live(due)


def test_a_new_sample_after_an_acknowledgement_waits_again(due, converted, patient, oncologist):
    services.acknowledge_result(draw=converted, by=oncologist, note="Seen")

    newer = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(1), ctc_count=30)

    assert _stored(due) == (HIGH,) * 3 == _live(due)  # persistent, and not seen yet
    assert _stored_result(newer) == (HIGH, False) == _live_result(newer)
    assert _stored_result(converted) == (HIGH, True) == _live_result(converted)


def test_changing_the_cancer_type_refreshes_the_ranks(due, patient, oncologist):
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=4)
    assert _stored(due) == (NOTHING,) * 3  # 4 is below the breast cut-off of 5

    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"cancer_type": "colorectal"},
        reason="Typo",
    )

    # ...and at or above the colorectal one of 3: unfavourable at baseline.
    assert _stored(due) == (REVIEW,) * 3 == _live(due)
    assert _stored_result(draw) == (REVIEW, False) == _live_result(draw)


def test_a_csv_import_refreshes_the_ranks(due, patient, oncologist, tmp_path):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    assert _stored(due) == NO_DRAW
    path = tmp_path / "lab.csv"
    path.write_text(
        "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"
        "MRN0001,2026-02-28 09:00,7.5,resulted,12,CS-9,\n"
    )

    call_command("import_ctc", str(path), stdout=StringIO(), stderr=StringIO())

    imported = CTCDraw.objects.get(accession="CS-9")
    assert _stored(due) == (HIGH,) * 3 == _live(due)
    assert _stored_result(imported) == (HIGH, False) == _live_result(imported)


def test_a_csv_import_ranks_what_it_writes_and_what_its_rows_change(
    due, line, patient, oncologist, nurse, tmp_path
):
    """COPY ranks the new draws before writing them; the ORM path ranks after. Either
    way every stored rank is then the live one: the new tubes' (a clear conversion, a
    pooled pair, a failed tube alone and one beside a resulted tube, a lower bound), and
    those of tubes on record whose flags the new rows change (an earlier sample
    imported before them; an acknowledged result whose previous sample moves)."""
    other = builders.patient(oncologist, mrn="MRN0002", cancer_type="colorectal")
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 10), ctc_count=6)
    seen = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 20), ctc_count=7)
    services.acknowledge_result(draw=seen, by=nurse, note="Seen")
    builders.draw(other, oncologist, drawn_at=date(2026, 1, 10), ctc_count=1)
    path = tmp_path / "lab.csv"
    path.write_text(
        "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"
        "MRN0001,2026-01-05 09:00,7.5,resulted,0,CS-1,\n"  # before both: they change
        "MRN0001,2026-02-15 09:00,7.5,resulted,2,CS-2,\n"  # between: the 20th converts
        "MRN0001,2026-02-28 09:00,7.5,resulted,12,CS-3,\n"
        "MRN0001,2026-02-28 09:00,7.5,resulted,9,CS-4,\n"  # pooled with CS-3
        "MRN0001,2026-03-01 09:00,7.5,failed,,CS-5,\n"
        "MRN0002,2026-01-12 09:00,7.5,failed,,CS-6,\n"
        "MRN0002,2026-01-12 09:00,10,resulted,>40,CS-7,\n"
        "MRN0002,2026-01-20 09:00,7.5,rejected,,CS-8,\n"
    )

    call_command("import_ctc", str(path), stdout=StringIO(), stderr=StringIO())

    assert CTCDraw.objects.filter(accession__startswith="CS-").count() == 8
    assert CTCDraw.objects.exclude(review_rank=None).filter(accession__startswith="CS-").exists()
    _every_stored_rank_is_live()
    assert assessment.refresh_review_ranks(Patient.objects.values_list("pk", flat=True)) == (0, 0)


def test_an_hl7_result_refreshes_the_ranks(api, due, patient, oncologist):
    # The message's draw: 1 Mar 2026 07:30 UTC, 7 CTC in 7.5 mL, accession CS-26-0101.
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(6), ctc_count=1)
    assert _stored(due) == (NOTHING,) * 3
    api.force_authenticate(oncologist)
    body = DATA / "hl7" / "oru_r01_final.hl7"

    r = api.generic("POST", "/api/v1/hl7/oru/", data=body.read_bytes(), content_type="text/plain")

    assert r.status_code == 200 and b"|AA|" in r.content
    received = CTCDraw.objects.get(accession="CS-26-0101")
    # Converted to unfavourable, but 7 is near the cut-off (about 82%): review, not high.
    assert _stored(due) == (REVIEW,) * 3 == _live(due)
    assert _stored_result(received) == (REVIEW, False) == _live_result(received)


# --- on every day, the database picks the phase the rules are in -------------------------------


def _rank_from_the_database(cycle: TreatmentCycle, today: date) -> int:
    (row,) = assessment.due_cycles(cycle.scheduled_date, 1, today=today)
    return row.rank


@pytest.mark.parametrize(
    ("tube", "phases"),
    [
        (None, NO_DRAW),
        ({"status": "pending", "ctc_count": None}, (NOTHING,) * 3),
        ({"status": "rejected", "ctc_count": None}, (NOTHING, REVIEW, REVIEW)),  # not evaluable
        ({"status": "resulted", "ctc_count": 1}, (NOTHING,) * 3),
        ({"status": "resulted", "ctc_count": 40}, (HIGH,) * 3),
    ],
)
def test_on_every_day_around_the_window_the_database_ranks_as_the_rules_do(
    due, patient, oncologist, tube, phases
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    if tube is not None:
        builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(4), **tube)
    series = assessment.series_for(patient)

    days = [OPENS + timedelta(days=k) for k in range(-3, 7 + 4)]
    from_the_database = [_rank_from_the_database(due, day) for day in days]

    assert from_the_database == [_rank_on(series, due, day) for day in days]
    before, within, after = phases
    assert from_the_database == [before] * 3 + [within] * 8 + [after] * 3


# --- the settings the rules read, and stale ranks -------------------------------------------


def test_after_a_cut_off_change_the_command_recomputes_and_the_worklist_warns_until_then(
    due, patient, oncologist, settings, caplog
):
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=4)
    assert _stored(due) == (NOTHING,) * 3
    settings.CTC_CUTOFFS = {**settings.CTC_CUTOFFS, "breast": 3}

    with caplog.at_level(logging.ERROR, logger="patients.assessment"):
        assessment.worklist(DAY1, 1)
    assert f"differs from the rules for cycles {due.pk}" in caplog.text

    out = StringIO()
    call_command("refresh_review_ranks", stdout=out)

    assert "1 cycle and 1 result" in out.getvalue()
    assert _stored(due) == (REVIEW,) * 3 == _live(due)
    assert _stored_result(draw) == (REVIEW, False) == _live_result(draw)


def test_after_a_clarity_change_the_command_lowers_high_to_review(due, converted, settings, nurse):
    services.acknowledge_result(draw=converted, by=nurse, note="Seen")
    assert _stored_result(converted) == (HIGH, True)
    settings.CTC_CLEAR_PROBABILITY = 0.99  # 9 CTC: about 95%, no longer clear

    call_command("refresh_review_ranks", stdout=StringIO())

    assert _stored(due) == (SEEN_REVIEW,) * 3 == _live(due)
    assert _stored_result(converted) == (REVIEW, True) == _live_result(converted)


def test_the_command_puts_right_every_stale_rank(due, converted, patient, oncologist):
    wrong = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 20), ctc_count=50)
    services.mark_draw_entered_in_error(
        draw=wrong, version=builders.version_of(wrong), by=oncologist, reason="Wrong patient"
    )
    TreatmentCycle.objects.update(
        rank_before_window=3, rank_in_window=3, rank_after_day_1=3, window_opens=DAY1
    )
    CTCDraw.objects.update(review_rank=1, review_acknowledged=True)  # the voided one too

    out = StringIO()
    call_command("refresh_review_ranks", stdout=out)

    assert "1 cycle and 3 results" in out.getvalue()
    _every_stored_rank_is_live()
    out = StringIO()
    call_command("refresh_review_ranks", stdout=out)
    assert "0 cycles and 0 results" in out.getvalue()  # nothing left to change


def test_the_command_ranks_every_patient_round_by_round_and_shows_its_progress(
    due, converted, oncologist, monkeypatch
):
    from patients.management.commands import refresh_review_ranks

    others = [builders.patient(oncologist, family_name=f"Other{i}") for i in range(2)]
    for other in others:
        builders.draw(other, oncologist, drawn_at=date(2026, 2, 20), ctc_count=40)
    TreatmentCycle.objects.update(rank_before_window=3, rank_in_window=3, rank_after_day_1=3)
    CTCDraw.objects.update(review_rank=None, review_acknowledged=False)
    monkeypatch.setattr(refresh_review_ranks, "RANK_BATCH", 2)  # three patients: two rounds

    out, progress = StringIO(), StringIO()
    call_command("refresh_review_ranks", stdout=out, stderr=progress)

    assert "1 cycle and 3 results" in out.getvalue()
    _every_stored_rank_is_live()
    assert "Ranking" in progress.getvalue() and "3/3" in progress.getvalue()


# --- the migration to version 2 -------------------------------------------------------------


def _data_step(name: str):
    """The migration's data step `name`, on the models as they are right after it."""
    loader = MigrationExecutor(connection).loader
    migration = loader.get_migration("patients", MIGRATION)
    (step,) = [
        op
        for op in migration.operations
        if isinstance(op, migrations.RunPython) and op.code.__name__ == name
    ]
    state = loader.project_state(("patients", MIGRATION))
    return lambda: step.code(state.apps, None)


def test_the_migration_takes_resulted_at_from_the_history(patient, oncologist):
    pending = builders.draw(
        patient, oncologist, drawn_at=date(2026, 2, 1), status="pending", ctc_count=None
    )
    services.update_draw(
        draw=pending,
        version=builders.version_of(pending),
        by=oncologist,
        changes={"status": "resulted", "ctc_count": 2},
        reason="Result arrived",
    )
    corrected = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 8), ctc_count=1)
    services.update_draw(
        draw=corrected,
        version=builders.version_of(corrected),
        by=oncologist,
        changes={"ctc_count": 3},
        reason="Typo",
    )
    rejected = builders.draw(
        patient, oncologist, drawn_at=date(2026, 2, 15), status="rejected", ctc_count=None
    )
    # Written without a history row (as a bulk path could before version 2).
    (unrecorded,) = CTCDraw.objects.bulk_create(
        [
            CTCDraw(
                patient=patient,
                drawn_at=_at(date(2026, 2, 22)),
                status="resulted",
                ctc_count=4,
                entered_by=oncologist,
                entered_at=_at(date(2026, 2, 23), 8),
            )
        ]
    )
    history = CTCDraw.history.model.objects
    history.filter(id=pending.pk, status="resulted").update(history_date=_at(date(2026, 2, 3), 10))
    first, second = history.filter(id=corrected.pk).order_by("history_id")
    history.filter(pk=first.pk).update(history_date=_at(date(2026, 2, 9), 12))
    history.filter(pk=second.pk).update(history_date=_at(date(2026, 2, 11), 12))
    CTCDraw.objects.update(resulted_at=None)  # as the new column starts

    _data_step("fill_resulted_at")()

    resulted_at = dict(CTCDraw.objects.values_list("pk", "resulted_at"))
    assert resulted_at[pending.pk] == _at(date(2026, 2, 3), 10)  # when it became resulted
    assert resulted_at[corrected.pk] == _at(date(2026, 2, 9), 12)  # the first result, kept
    assert resulted_at[unrecorded.pk] == _at(date(2026, 2, 23), 8)  # no history: its entry
    assert resulted_at[rejected.pk] is None


V1_FLAGS = [
    {"code": "unfavourable", "severity": "review", "message": "Unfavourable: 9 CTC/7.5 mL"},
    {"code": "became_unfavourable", "severity": "high", "message": "Became unfavourable"},
]


def test_the_migration_keeps_earlier_acknowledgements_meaningful_and_ranks_everything(
    due, converted, line, patient, oncologist, nurse
):
    later = builders.cycle(line, oncologist, number=4, scheduled_date=DAY1 + timedelta(21))
    seen_later = Acknowledgement.objects.create(  # before the tube now in its window came
        cycle=later,
        patient=patient,
        acknowledged_by=nurse,
        acknowledged_at=timezone.now() - timedelta(days=1),
        note="Missing draw: phoned the patient",
        flags=[{"code": "missing_pre_cycle_draw", "severity": "review", "message": "Missing"}],
    )
    newer = builders.draw(patient, oncologist, drawn_at=DAY1 + timedelta(20), ctc_count=30)
    seen_due = Acknowledgement.objects.create(  # after every tube in its window
        cycle=due,
        patient=patient,
        acknowledged_by=nurse,
        note="Oncologist informed",
        flags=V1_FLAGS,
    )
    TreatmentCycle.objects.update(  # as the new columns start
        rank_before_window=0, rank_in_window=0, rank_after_day_1=0, window_opens=None
    )
    CTCDraw.objects.update(review_rank=None, review_acknowledged=False)

    _data_step("keep_acknowledgements_meaningful")()
    _data_step("rank_everything")()

    seen_due.refresh_from_db()
    seen_later.refresh_from_db()
    on = timezone.localdate(seen_due.acknowledged_at)
    now_shown = assessment.series_for(patient).cycle_assessment(due, on).flags
    assert seen_due.flags == [{**f, "rules_version": 1} for f in V1_FLAGS] + [
        {
            "code": f.code,
            "severity": f.severity,
            "message": f.message,
            "source": f.source,
            "rules_version": 2,
        }
        for f in now_shown
    ]
    assert {f["source"] for f in seen_due.flags[2:]} == {converted.pk}
    # A tube came into its window after it: what it saw is kept, nothing is added.
    assert seen_later.flags == [{**seen_later.flags[0], "rules_version": 1}]
    assert len(seen_later.flags) == 1
    # So cycle 3 and its sample stay acknowledged; cycle 4's new sample waits for review.
    assert _stored(due) == (SEEN_HIGH,) * 3
    assert _stored_result(converted) == (HIGH, True)
    assert _stored(later) == (HIGH,) * 3
    assert _stored_result(newer) == (HIGH, False)
    _every_stored_rank_is_live()


def test_the_migration_adds_nothing_to_an_acknowledgement_when_a_count_was_corrected_after_it(
    due, converted, oncologist, nurse
):
    seen = Acknowledgement.objects.create(
        cycle=due,
        patient_id=due.therapy_line.patient_id,
        acknowledged_by=nurse,
        acknowledged_at=timezone.now() - timedelta(hours=1),
        note="Oncologist informed",
        flags=V1_FLAGS,
    )
    services.update_draw(  # after the acknowledgement: what it saw is no longer what is shown
        draw=converted,
        version=builders.version_of(converted),
        by=oncologist,
        changes={"ctc_count": 40},
        reason="Transcription error",
    )

    _data_step("keep_acknowledgements_meaningful")()

    seen.refresh_from_db()
    assert seen.flags == [{**f, "rules_version": 1} for f in V1_FLAGS]


def test_generate_cohort_ranks_the_cycles_and_results_it_writes():
    call_command(
        "generate_cohort",
        patients=12,
        allow_without_debug=True,
        stdout=StringIO(),
        stderr=StringIO(),
    )

    assert TreatmentCycle.objects.exists()
    _every_stored_rank_is_live()


# --- the order from SQL is the rules' order --------------------------------------------------

FAMILY_NAMES = ["Adams", "adams", "O'Neil", "Oneill", "Zhu", "Ávila", "de Vries"]
START = date(2026, 3, 2)

draw_plans = st.lists(
    st.tuples(
        st.integers(min_value=-30, max_value=6),  # day relative to START
        st.sampled_from(["resulted"] * 4 + ["rejected", "failed", "pending"]),
        st.sampled_from([0, 1, 2, 4, 5, 9, 30]),
        st.sampled_from(["7.5", "7.5", "4"]),
        st.booleans(),  # a second tube of the same venepuncture
    ),
    max_size=4,
)
patient_plans = st.lists(
    st.fixed_dictionaries(
        {
            "family": st.sampled_from(FAMILY_NAMES),
            "given": st.sampled_from(["Ann", "ann", "Bo"]),
            "cancer": st.sampled_from(["breast", "prostate", "colorectal"]),
            "cycles": st.lists(
                st.tuples(st.integers(min_value=-1, max_value=7), st.booleans()),
                min_size=1,
                max_size=2,
            ),
            "draws": draw_plans,
            "doxorubicin": st.booleans(),
            "acknowledge": st.sampled_from([None, "cycle", "result"]),
        }
    ),
    min_size=1,
    max_size=6,
)


def _make_cohort(plans: list[dict], by) -> None:
    for i, plan in enumerate(plans):
        patient = builders.patient(
            by,
            mrn=f"H-{i}",
            given_name=plan["given"],
            family_name=plan["family"],
            cancer_type=plan["cancer"],
        )
        line = builders.therapy_line(
            patient,
            by,
            regimen="FEC" if plan["doxorubicin"] else "Docetaxel",
            start_date=START - timedelta(days=60),
            contains_doxorubicin=plan["doxorubicin"],
        )
        builders.cycle(
            line, by, number=1, scheduled_date=START - timedelta(days=12), status="given"
        )
        upcoming = [
            builders.cycle(
                line,
                by,
                number=number,
                scheduled_date=START + timedelta(days=offset),
                status="delayed" if delayed else "planned",
            )
            for number, (offset, delayed) in enumerate(plan["cycles"], start=2)
        ]
        for k, (offset, status, count, volume, duplicate) in enumerate(plan["draws"]):
            for _tube in range(2 if duplicate else 1):
                builders.draw(
                    patient,
                    by,
                    drawn_at=_at(START + timedelta(days=offset), hour=8 + k),
                    status=status,
                    ctc_count=count if status == "resulted" else None,
                    blood_volume_ml=Decimal(volume),
                )
        _acknowledge(plan["acknowledge"], patient, upcoming[0], by)


def _acknowledge(what: str | None, patient: Patient, cycle: TreatmentCycle, by) -> None:
    if what == "cycle":
        if assessment.series_for(patient).cycle_assessment(cycle).needs_review:
            services.acknowledge_cycle(cycle=cycle, by=by, note="Seen")  # else refused
    elif what == "result":
        series = assessment.series_for(patient)
        waiting_results = rules.results_to_review(series.assessments)
        if waiting_results:
            draw = CTCDraw.objects.get(pk=waiting_results[-1].draw.id)
            services.acknowledge_result(draw=draw, by=by, note="Seen")


def _results_in_the_rules_order() -> list[int]:
    found = []
    for series in assessment.series_for_many(Patient.objects.all()).values():
        for draw in series.all_draws():
            rank, seen = _live_result_of(series, draw)
            if rank is not None and not seen:
                # Oldest result first; a tube never resulted (not evaluable) by when it
                # was entered.
                found.append((rank, draw.resulted_at or draw.entered_at, draw.pk))
    return [pk for *_key, pk in sorted(found)]


@examples(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plans=patient_plans,
    flagged=st.booleans(),
    page_size=st.integers(1, 4),
    today=st.integers(min_value=-10, max_value=14).map(lambda k: START + timedelta(days=k)),
)
def test_the_sql_order_is_the_order_the_rules_give(oncologist, plans, flagged, page_size, today):
    with rolled_back():
        _make_cohort(plans, oncologist)

        due = assessment.due_cycles(START, 7, flagged=flagged, today=today)
        from_sql = list(due)
        paged = [c for k in range(0, due.count(), page_size) for c in due[k : k + page_size]]
        items = assessment.worklist_items(assessment.due_cycles(START, 7, today=today), today)
        by_rules = sorted(items, key=assessment.worklist_order)
        if flagged:
            by_rules = [i for i in by_rules if i.assessment.flags]

        assert [c.pk for c in from_sql] == [i.cycle.pk for i in by_rules]
        assert [c.pk for c in paged] == [c.pk for c in from_sql]  # pages: same rows, same order
        assert due[due.count() : due.count() + page_size] == []
        results = [d.pk for d in waiting(CTCDraw.objects.all())]
        assert results == _results_in_the_rules_order()
        _every_stored_rank_is_live()
