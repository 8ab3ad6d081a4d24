"""The demo cohort (`manage.py seed_demo`) shows every case of the rules, version 2.

Seeded once for the module (about 15 s), read into plain facts, rolled back: the
tests below only read those facts. Seeded on the day the tests run, as a demo is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from patients import assessment, rules
from patients.demo import TRAJECTORIES, plan_cohort
from patients.models import CTCDraw, Patient
from patients.roles import NURSE
from patients.rules import Category, CycleStatus, FlagCode, PreCycleState, Severity

# Unfavourable at baseline in the studies behind the cut-offs: Cristofanilli, NEJM
# 2004 (breast, 49%); de Bono, Clin Cancer Res 2008 (prostate, 57%); Cohen, JCO 2008
# (colorectal, 26%).
PUBLISHED_BASELINE_UNFAVOURABLE = {"breast": 0.49, "prostate": 0.57, "colorectal": 0.26}
# The demo's 12 patients of each type come closer than one patient in twelve (0.083).
TOLERANCE = 0.05
CATEGORY_FLAGS = {FlagCode.CONVERSION_TO_UNFAVOURABLE, FlagCode.PERSISTENT_UNFAVOURABLE}

# The tests read the facts `demo` gathered; the mark makes pytest-django set up the
# test database, which the module's fixture then seeds (and rolls back).
pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class UpcomingCycle:
    mrn: str
    status: str
    scheduled_date: date
    first_scheduled_date: date
    state: PreCycleState
    flags: tuple[rules.Flag, ...]
    drawn_on: date | None  # the sample the cycle's flags come from
    acknowledged_by: tuple[tuple[str, str], ...]  # (role, note) of each acknowledgement


@dataclass(frozen=True)
class ResultToReview:
    mrn: str
    severity: Severity | None
    escalated: bool
    has_cycles: bool
    in_a_window: bool


@dataclass
class Demo:
    today: date
    trajectories: dict[str, str] = field(default_factory=dict)  # by MRN
    baseline: dict[str, list[Category | None]] = field(default_factory=lambda: defaultdict(list))
    sample_flags: dict[str, list[rules.Flag]] = field(default_factory=lambda: defaultdict(list))
    given_cycle_flags: list[rules.Flag] = field(default_factory=list)
    upcoming: list[UpcomingCycle] = field(default_factory=list)
    results: list[ResultToReview] = field(default_factory=list)
    lines: dict[str, list[tuple[int, str, bool, int]]] = field(default_factory=dict)
    cancer_types: dict[str, str] = field(default_factory=dict)
    largest_sample: int = 0
    censored: list[tuple[int | None, str]] = field(default_factory=list)
    volumes: set[Decimal] = field(default_factory=set)
    statuses: set[str] = field(default_factory=set)
    escalated: int = 0
    emails: list[list[str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker) -> Demo:
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", allow_without_debug=True, stdout=StringIO(), stderr=StringIO())
        facts = _read(Demo(today=timezone.localdate()))
        facts.emails = [message.to for message in mail.outbox]
        transaction.set_rollback(True)
    return facts


def _read(facts: Demo) -> Demo:
    facts.trajectories = {p.mrn: p.trajectory for p in plan_cohort(facts.today)}
    all_series = assessment.series_for_many(Patient.objects.all())
    roles = {}
    for series in all_series.values():
        _read_patient(facts, series, roles)
    page = assessment.results_page(list, among=CTCDraw.objects.all())
    # The list's own series carry assessments only: the patients' cycles come from theirs.
    facts.results = [_result(item, all_series[item.patient.pk]) for item in page.items]
    draws = CTCDraw.objects.all()
    facts.censored = [(d.ctc_count, d.count_qualifier) for d in draws if d.count_qualifier]
    facts.volumes = {d.blood_volume_ml for d in draws}
    facts.statuses = {d.status for d in draws}
    facts.escalated = draws.filter(escalated_at__isnull=False).count()
    return facts


def _read_patient(facts: Demo, series: assessment.PatientSeries, roles: dict) -> None:
    patient = series.patient
    facts.cancer_types[patient.mrn] = patient.cancer_type
    facts.lines[patient.mrn] = [
        (line.line_number, line.regimen, line.contains_doxorubicin, line.cycle_length_days)
        for line in sorted(series.lines, key=lambda line: line.line_number)
    ]
    evaluable = [a for a in series.assessments if a.evaluable]
    facts.baseline[patient.cancer_type].append(evaluable[0].category if evaluable else None)
    facts.sample_flags[patient.mrn] = [f for a in series.assessments for f in a.flags]
    facts.largest_sample = max(
        [facts.largest_sample, *(len(a.sample.sample.tubes) for a in evaluable if a.sample)]
    )
    for cycle in series.given_cycles():
        facts.given_cycle_flags.extend(series.cycle_assessment(cycle, facts.today).flags)
    for cycle in series.upcoming_cycles():
        found = series.cycle_assessment(cycle, facts.today)
        acks = tuple(
            (_role(ack.acknowledged_by, roles), ack.note)
            for ack in series.acknowledgements_of_cycle(cycle.pk)
        )
        facts.upcoming.append(
            UpcomingCycle(
                patient.mrn,
                cycle.status,
                cycle.scheduled_date,
                cycle.first_scheduled_date,
                found.state,
                found.flags,
                found.draw.draw.drawn_on if found.draw else None,
                acks if series.cycle_acknowledged(found) else (),
            )
        )


def _role(user, roles: dict) -> str:
    if user.pk not in roles:
        roles[user.pk] = ",".join(user.groups.values_list("name", flat=True))
    return roles[user.pk]


def _result(item: assessment.ResultItem, series: assessment.PatientSeries) -> ResultToReview:
    drawn_on = item.found.draw.drawn_on
    windows = [rules.pre_cycle_window(assessment.cycle_in(c)) for c in series.cycles]
    return ResultToReview(
        item.patient.mrn,
        item.severity,
        item.escalated,
        bool(series.cycles),
        any(opens <= drawn_on <= day_1 for opens, day_1 in windows),
    )


def test_every_trajectory_appears_in_the_default_cohort():
    plans = plan_cohort(timezone.localdate())

    assert {plan.trajectory for plan in plans} == set(TRAJECTORIES)


def test_the_demo_shows_every_flag_of_the_rules(demo):
    codes = {f.code for flags in demo.sample_flags.values() for f in flags}
    codes |= {f.code for f in demo.given_cycle_flags}
    codes |= {f.code for cycle in demo.upcoming for f in cycle.flags}

    expected = set(FlagCode) - {FlagCode.NO_CUTOFF}  # every demo cancer type has a cut-off
    assert expected <= codes, expected - codes


def test_every_pre_cycle_state_stands_before_some_upcoming_cycle(demo):
    states = {cycle.state for cycle in demo.upcoming}

    assert states == set(PreCycleState)
    due_this_week = [c for c in demo.upcoming if c.state == PreCycleState.DRAW_DUE and not c.flags]
    assert all(0 <= (c.scheduled_date - demo.today).days <= 7 for c in due_this_week)
    assert due_this_week
    assert all(not c.flags for c in demo.upcoming if c.state == PreCycleState.NOT_YET_DUE)


@pytest.mark.parametrize("cancer_type", sorted(PUBLISHED_BASELINE_UNFAVOURABLE))
def test_the_share_unfavourable_at_baseline_is_close_to_the_published_one(demo, cancer_type):
    baselines = demo.baseline[cancer_type]

    share = baselines.count(Category.UNFAVOURABLE) / len(baselines)

    published = PUBLISHED_BASELINE_UNFAVOURABLE[cancer_type]
    assert abs(share - published) <= TOLERANCE, (cancer_type, share, published)


def test_results_to_review_hold_a_result_with_no_cycle_one_outside_every_window_and_one_escalated(
    demo,
):
    results = demo.results

    assert any(r.severity == Severity.HIGH and not r.has_cycles for r in results)
    assert any(r.severity == Severity.HIGH and r.has_cycles and not r.in_a_window for r in results)
    assert [r.severity for r in results if r.escalated] == [Severity.HIGH]
    assert demo.escalated == 1
    assert demo.emails == [["oncologist@example.org"]]  # one e-mail, to the demo oncologist


def test_a_stable_patient_near_the_cut_off_gets_review_flags_and_no_high_one(demo):
    stable = [mrn for mrn, kind in demo.trajectories.items() if kind == "noise_at_cutoff"]

    quiet = [
        mrn
        for mrn in stable
        if any(f.code in CATEGORY_FLAGS for f in demo.sample_flags[mrn])
        and all(f.severity != Severity.HIGH for f in demo.sample_flags[mrn])
    ]

    assert quiet


def test_a_delayed_cycle_keeps_the_draw_taken_for_its_first_date(demo):
    delayed = [c for c in demo.upcoming if c.status == CycleStatus.DELAYED]

    assert any(
        c.scheduled_date > c.first_scheduled_date
        and c.state == PreCycleState.RESULT_IN_WINDOW
        and c.drawn_on is not None
        and c.drawn_on < c.first_scheduled_date
        for c in delayed
    ), delayed


def test_a_nurse_has_acknowledged_the_flags_of_an_upcoming_cycle_with_a_note(demo):
    acknowledged = [c for c in demo.upcoming if c.acknowledged_by]

    assert any(
        role == NURSE and note.strip()
        for cycle in acknowledged
        for role, note in cycle.acknowledged_by
    )
    assert all(any(f.severity in rules.NEEDS_REVIEW for f in c.flags) for c in acknowledged)


def test_the_tubes_include_duplicates_a_censored_count_pending_and_rejected_ones(demo):
    assert demo.largest_sample >= 2  # two tubes of one venepuncture, pooled
    assert (1000, ">") in demo.censored
    assert {"pending", "rejected", "failed", "resulted"} <= demo.statuses
    assert all(Decimal("1.0") <= volume <= Decimal("10.0") for volume in demo.volumes)


def test_regimens_are_those_given_in_metastatic_disease(demo):
    regimens = [line for lines in demo.lines.values() for line in lines]

    assert not any("dose-dense" in regimen.lower() for _, regimen, _, _ in regimens)
    assert not any(doxo and length < 21 for _, _, doxo, length in regimens)
    assert any(
        doxo
        for mrn, lines in demo.lines.items()
        for _, _, doxo, _ in lines
        if demo.cancer_types[mrn] == "breast"
    )
    for mrn, lines in demo.lines.items():
        names = [regimen.lower() for _, regimen, _, _ in lines]  # by line number
        for k, name in enumerate(names):
            if "cabazitaxel" in name:
                assert k > 0 and any("docetaxel" in earlier for earlier in names[:k]), mrn
        oxaliplatin = [n for n in names if "folfox" in n or "capox" in n]
        assert len(oxaliplatin) <= 1, (mrn, names)  # the same first line, never one then the other


def test_cabazitaxel_is_given_as_a_second_line(demo):
    lines = [line for lines in demo.lines.values() for line in lines]

    assert any(number >= 2 and "Cabazitaxel" in regimen for number, regimen, _, _ in lines)
