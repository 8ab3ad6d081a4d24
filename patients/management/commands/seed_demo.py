"""`python manage.py seed_demo`: the demo cohort and the demo users.

Idempotent: users that exist are left as they are (their password is reset to
the demo password so the printed logins work), and the cohort is written only
once. Refuses to run on a database that holds patients other than the demo
ones, so it can never mix invented data into a real record.

Everything is written through the services, as a clinic would have: the record,
then the nurse's acknowledgements of what was reviewed before each cycle given
(`PatientPlan.reviewed_until`), a delay decided on day 1 after the draw, and one
run of the escalation (`services.escalate_flags`) a day after the escalated
patient's results arrived, before any other patient's results exist.
"""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from tqdm import tqdm

from patients import assessment, services
from patients.demo import (
    ACKNOWLEDGED_NOTE,
    MRN_PREFIX,
    CyclePlan,
    Event,
    PatientPlan,
    plan_cohort,
    review_note,
)
from patients.models import CTCDraw, Patient, TreatmentCycle
from patients.roles import NURSE, ONCOLOGIST

DEMO_PASSWORD_ENV = "CTCTRACK_DEMO_PASSWORD"
DEFAULT_DEMO_PASSWORD = "ctctrack-demo"  # noqa: S105 - demo data only, printed on purpose


DEMO_NAMES = {
    ONCOLOGIST: ("Olivia", "Okafor"),
    NURSE: ("Nina", "Novak"),
    "admin": ("Adam", "Admin"),
}


class Command(BaseCommand):
    help = "Create the demo cohort (about 36 patients) and the demo users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--size", type=int, default=36, help="Number of demo patients.")
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed even though DEBUG is off (the demo users have a known password).",
        )

    def handle(self, *args: Any, size: int, allow_without_debug: bool, **options: Any) -> None:
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError(
                "DEBUG is off: this looks like production. The demo users have a known "
                "password; pass --allow-without-debug if this really is a demo."
            )
        real = Patient.objects.exclude(mrn__startswith=MRN_PREFIX)
        if real.exists():
            raise CommandError(
                "This database holds patients that are not demo patients; refusing to add "
                "invented data to it."
            )
        password = os.environ.get(DEMO_PASSWORD_ENV, DEFAULT_DEMO_PASSWORD)
        users = self._users(password)
        if Patient.objects.exists():
            self.stdout.write("Demo cohort already present; nothing added.")
        else:
            self._cohort(size, users[ONCOLOGIST], users[NURSE])
        self._print_logins(password)

    def _users(self, password: str) -> dict[str, Any]:
        User = get_user_model()
        users = {}
        for name in (ONCOLOGIST, NURSE, "admin"):
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.is_staff = user.is_superuser = name == "admin"
            # An address at a domain reserved for examples (RFC 2606): escalations
            # reach the demo oncologist, and no real mailbox.
            user.email = user.email or f"{name}@example.org"
            # The lists show people by their full names (invented, like the patients').
            first, last = DEMO_NAMES[name]
            user.first_name, user.last_name = user.first_name or first, user.last_name or last
            user.save()
            if name != "admin":
                user.groups.add(Group.objects.get(name=name))
            users[name] = user
        return users

    def _cohort(self, size: int, oncologist: Any, nurse: Any) -> None:
        plans = plan_cohort(timezone.localdate(), size)
        # The escalated patient first: its result is the only one old enough to escalate.
        plans.sort(key=lambda plan: plan.event != Event.ESCALATED)
        escalated = 0
        with transaction.atomic():
            for plan in tqdm(plans, desc="Demo patients", unit="patient", file=self.stderr):
                patient = _write_patient(plan, oncologist)
                _acknowledge_reviewed(patient, plan, nurse)
                if plan.event == Event.ESCALATED:
                    escalated += _escalate_a_day_later(patient)
        self.stdout.write(self.style.SUCCESS(f"Created {len(plans)} demo patients."))
        if escalated:
            self.stdout.write(
                f"Escalated {escalated} high result{'s' if escalated > 1 else ''} as if "
                "nobody had acknowledged it for a day (one e-mail to the demo oncologist)."
            )

    def _print_logins(self, password: str) -> None:
        self.stdout.write(
            "Demo logins (demo data only):\n"
            f"  oncologist / {password}\n"
            f"  nurse      / {password}\n"
            f"  admin      / {password}  (staff: Django admin)"
        )


def _write_patient(plan: PatientPlan, by: Any) -> Patient:
    patient = services.register_patient(
        by=by,
        mrn=plan.mrn,
        given_name=plan.given_name,
        family_name=plan.family_name,
        birth_date=plan.birth_date,
        sex=plan.sex,
        cancer_type=plan.cancer_type,
        diagnosed_on=plan.diagnosed_on,
        oncologist=by,
    )
    delays = _write_lines(patient, plan, by)
    tz = timezone.get_current_timezone()
    for dp in plan.draws:
        services.record_draw(
            patient=patient,
            by=by,
            status=dp.status,
            ctc_count=dp.ctc_count,
            count_qualifier=dp.count_qualifier,
            drawn_at=datetime.combine(dp.drawn_on, time(dp.hour, 15), tzinfo=tz),
            blood_volume_ml=dp.blood_volume_ml,
            comment=dp.comment,
            accession=f"{plan.mrn}-{dp.drawn_on:%Y%m%d}-{dp.hour}-{dp.tube}",
        )
    # Delayed on day 1, after the draw taken for it: the draw still counts.
    for cycle, cp in delays:
        assert cp.delay_to is not None  # only such cycles are listed
        services.delay_cycle_and_following(
            cycle=cycle,
            by=by,
            new_date=cp.delay_to,
            reason=cp.delay_reason,
            version=cycle.version,
        )
    for ip in plan.imaging:
        services.record_imaging(
            patient=patient,
            by=by,
            performed_on=ip.performed_on,
            modality=ip.modality,
            response=ip.response,
            note=ip.note,
        )
    return patient


def _write_lines(
    patient: Patient, plan: PatientPlan, by: Any
) -> list[tuple[TreatmentCycle, CyclePlan]]:
    """The lines and their cycles; returns the cycles to delay once the draws are in."""
    delays = []
    for lp in plan.lines:
        line = services.add_therapy_line(
            patient=patient,
            by=by,
            line_number=lp.line_number,
            regimen=lp.regimen,
            start_date=lp.start_date,
            end_date=lp.end_date,
            cycle_length_days=lp.cycle_length_days,
            contains_doxorubicin=lp.contains_doxorubicin,
        )
        for cp in lp.cycles:
            cycle = services.plan_cycle(
                line=line,
                by=by,
                number=cp.number,
                scheduled_date=cp.scheduled_date,
                given_date=cp.given_date,
                status=cp.status,
            )
            if cp.delay_to is not None:
                delays.append((cycle, cp))
    return delays


def _acknowledge_reviewed(patient: Patient, plan: PatientPlan, nurse: Any) -> None:
    """What the nurse acknowledged: every cycle given and every result drawn before
    `plan.reviewed_until` that needed review, and the next cycle for `ACKNOWLEDGED`."""
    series = assessment.series_for(patient)
    if plan.reviewed_until is not None:
        for cycle in series.given_cycles():
            found = series.cycle_assessment(cycle)
            if found.needs_review and not series.cycle_acknowledged(found):
                note = review_note(found.flags)
                series.acknowledge(services.acknowledge_cycle(cycle=cycle, by=nurse, note=note))
        for draw, result in zip(series.draws, series.assessments, strict=True):
            drawn_before = timezone.localdate(draw.drawn_at) < plan.reviewed_until
            if drawn_before and result.needs_review and not series.result_acknowledged(result):
                note = review_note(series.result_flags(result))
                series.acknowledge(services.acknowledge_result(draw=draw, by=nurse, note=note))
    if plan.event == Event.ACKNOWLEDGED:
        cycle = series.upcoming_cycles()[0]
        services.acknowledge_cycle(cycle=cycle, by=nurse, note=ACKNOWLEDGED_NOTE)


def _escalate_a_day_later(patient: Patient) -> int:
    """Run the escalation as it would run once `CTC_ESCALATE_AFTER_HOURS` have passed
    since the patient's latest result arrived: how many results it escalated."""
    arrived = CTCDraw.objects.filter(patient=patient).aggregate(at=Max("resulted_at"))["at"]
    later = arrived + timedelta(hours=settings.CTC_ESCALATE_AFTER_HOURS)
    return len(services.escalate_flags(now=later).draw_ids)
