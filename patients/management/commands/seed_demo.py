"""`python manage.py seed_demo`: the demo cohort and the demo users.

Idempotent: users that exist are left as they are (their password is reset to
the demo password so the printed logins work), and the cohort is written only
once. Refuses to run on a database that holds patients other than the demo
ones, so it can never mix invented data into a real record.
"""

from __future__ import annotations

import os
from datetime import datetime, time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from patients import services
from patients.demo import MRN_PREFIX, PatientPlan, plan_cohort
from patients.models import Patient
from patients.roles import NURSE, ONCOLOGIST

DEMO_PASSWORD_ENV = "CTCTRACK_DEMO_PASSWORD"
DEFAULT_DEMO_PASSWORD = "ctctrack-demo"  # noqa: S105 - demo data only, printed on purpose


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
            self._cohort(size, users[ONCOLOGIST])
        self._print_logins(password)

    def _users(self, password: str) -> dict[str, Any]:
        User = get_user_model()
        users = {}
        for name in (ONCOLOGIST, NURSE, "admin"):
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.is_staff = user.is_superuser = name == "admin"
            user.save()
            if name != "admin":
                user.groups.add(Group.objects.get(name=name))
            users[name] = user
        return users

    def _cohort(self, size: int, oncologist: Any) -> None:
        plans = plan_cohort(timezone.localdate(), size)
        with transaction.atomic():
            for plan in tqdm(plans, desc="Demo patients", unit="patient", file=self.stderr):
                _write_patient(plan, oncologist)
        self.stdout.write(self.style.SUCCESS(f"Created {len(plans)} demo patients."))

    def _print_logins(self, password: str) -> None:
        self.stdout.write(
            "Demo logins (demo data only):\n"
            f"  oncologist / {password}\n"
            f"  nurse      / {password}\n"
            f"  admin      / {password}  (staff: Django admin)"
        )


def _write_patient(plan: PatientPlan, by: Any) -> None:
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
            services.plan_cycle(
                line=line,
                by=by,
                number=cp.number,
                scheduled_date=cp.scheduled_date,
                given_date=cp.given_date,
                status=cp.status,
                status_reason=cp.status_reason,
            )
    tz = timezone.get_current_timezone()
    for dp in plan.draws:
        services.record_draw(
            patient=patient,
            by=by,
            status=dp.status,
            ctc_count=dp.ctc_count,
            drawn_at=datetime.combine(dp.drawn_on, time(dp.hour, 15), tzinfo=tz),
            blood_volume_ml=dp.blood_volume_ml,
            comment=dp.comment,
            accession=f"{plan.mrn}-{dp.drawn_on:%Y%m%d}-{dp.hour}",
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
