"""`python manage.py acknowledge_history`: acknowledge the results from before go-live.

An upgrade step (docs/deployment.md, "Upgrading from clinical rules version
1"): every earlier result with a high or review flag otherwise waits in the
results to review, tens of thousands at once. This acknowledges those that
reached the record before `--before` (a local day), as `--user` with `--note`:
the same acknowledgement a nurse records from the list, and one access-log event
for the run (`services.acknowledge_backlog`).

A dry run unless `--apply`: it prints how many results of each patient (by id)
it would acknowledge. Refuses without a note, with a day in the future, or a user
who may not acknowledge. Running it again acknowledges nothing more.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from patients import services, wording


class Command(BaseCommand):
    help = (
        "Acknowledge, as one user with one note, every result waiting for review that "
        "reached the record before a day (an upgrade step). A dry run unless --apply."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--before",
            required=True,
            metavar="YYYY-MM-DD",
            help="acknowledge the results that reached the record before this local day",
        )
        parser.add_argument(
            "--user",
            required=True,
            metavar="USERNAME",
            help="the nurse or oncologist accountable for the acknowledgements",
        )
        parser.add_argument(
            "--note",
            required=True,
            help="why, as each acknowledgement records it (e.g. the review that covered them)",
        )
        parser.add_argument(
            "--apply",
            action="store_true",
            help="acknowledge them (without it: only say how many, per patient)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        before = _day(options["before"])
        note = options["note"].strip()
        if not note:
            raise CommandError("--note: write why these results are acknowledged.")
        if before > timezone.localdate():
            raise CommandError(
                f"--before: {before:%Y-%m-%d} is in the future; give the day the clinic went live."
            )
        user = _acknowledging_user(options["user"])
        waiting = services.backlog_before(before)
        what = (
            f"{wording.how_many(waiting.results, 'result')} of "
            f"{wording.how_many(len(waiting.by_patient), 'patient')} reported before "
            f"{before:%Y-%m-%d}"
        )
        if not waiting.results:
            self.stdout.write(
                f"Nothing to acknowledge: no result reported before {before:%Y-%m-%d} "
                "waits for review."
            )
            return
        if not options["apply"]:
            for patient_id, draw_ids in waiting.by_patient.items():
                self.stdout.write(
                    f"patient {patient_id}: {wording.how_many(len(draw_ids), 'result')}"
                )
            self.stdout.write(
                f"Dry run: would acknowledge {what}, as {user.get_username()}. "
                "Run again with --apply to acknowledge them."
            )
            return
        with tqdm(
            total=len(waiting.by_patient), desc="Acknowledging", unit="patient", file=self.stderr
        ) as bar:
            try:
                done = services.acknowledge_backlog(
                    before=before, by=user, note=note, progress=bar.update
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Acknowledged {wording.how_many(done.results, 'result')} of "
                f"{wording.how_many(len(done.by_patient), 'patient')} reported before "
                f"{before:%Y-%m-%d}, as {user.get_username()} (one access-log event)."
            )
        )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--before: {text!r} is not a date (YYYY-MM-DD).") from None


def _acknowledging_user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"--user: no user {username!r}.")
    if not user.is_active or not user.has_perm("patients.add_acknowledgement"):
        raise CommandError(
            f"--user: {username!r} may not acknowledge results (an active nurse or oncologist may)."
        )
    return user
