"""`python manage.py escalate_flags`: e-mail the high results nobody acknowledged in time.

Run every 15 minutes by cron or a systemd timer (docs/deployment.md). Each high
result unacknowledged `CTC_ESCALATE_AFTER_HOURS` after it arrived is escalated
once (`services.escalate_flags` says to whom and how); running it again at once
escalates nothing. Exits non-zero when mail could not be sent or nobody could
receive it, so that the scheduler reports it: those results are tried again
on the next run.

While it marks the results escalated it shows a progress bar on stderr when
that is a terminal (a run by hand after an outage or an upgrade may mark
hundreds of thousands); never from cron or a timer, whose output is mailed or
logged.
"""

from __future__ import annotations

import smtplib
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from patients import services, wording


class Command(BaseCommand):
    help = "E-mail oncologists about high results not acknowledged in time (every 15 minutes)."

    def handle(self, *args: Any, **options: Any) -> None:
        bars: list[tqdm[Any]] = []

        def advance(marked: int, total: int) -> None:
            if not bars:  # the total is known once the results due are found and sent
                bars.append(
                    tqdm(
                        total=total,
                        desc="Escalating",
                        unit="result",
                        file=self.stderr,
                        disable=None,
                    )
                )
            bars[0].update(marked - bars[0].n)

        try:
            run = services.escalate_flags(progress=advance)
        except (smtplib.SMTPException, OSError) as exc:
            raise CommandError(
                f"Sending the e-mails failed ({type(exc).__name__}: {exc}): nothing was "
                "escalated; the next run tries again."
            ) from exc
        finally:
            for bar in bars:
                bar.close()
        if run.busy:
            self.stdout.write("Another run is escalating now: nothing done.")
            return
        if run.draw_ids or not run.unreachable:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Escalated {wording.how_many(len(run.draw_ids), 'result')} to "
                    f"{wording.how_many(len(run.recipients), 'recipient')}."
                )
            )
        if run.unreachable:
            raise CommandError(
                f"{wording.how_many(len(run.unreachable), 'high result')} due for escalation, "
                "but no active oncologist who may see the patient has an e-mail address: "
                + ("nothing was sent." if not run.draw_ids else "those were not sent.")
            )
