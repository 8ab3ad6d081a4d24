"""`python manage.py refresh_review_ranks`: recompute every stored rank of the worklist and
the results to review.

The ranks (each cycle's rank in each phase of its window, and each result's
place in the results to review) are kept current by every write, but they also
depend on the settings the rules read: `CTC_CUTOFFS`, `CTC_PRE_CYCLE_WINDOW_DAYS`,
`CTC_CLEAR_PROBABILITY`, `CTC_EXTRA_POISSON_CV` and `TIME_ZONE`. Run this after
changing any of them (the worklist logs an error naming the cycles whose stored
rank disagrees with the rules, the results to review the results). Safe to run
at any time and any number of times: it writes only ranks that changed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from patients import wording
from patients.assessment import refresh_review_ranks
from patients.models import Patient


class Command(BaseCommand):
    help = (
        "Recompute the stored ranks of the worklist and the results to review "
        "(after a change of the settings the rules read)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            changed = refresh_review_ranks(Patient.objects.values_list("pk", flat=True))
        self.stdout.write(
            self.style.SUCCESS(
                f"Review ranks changed: {wording.how_many(changed.cycles, 'cycle')} and "
                f"{wording.how_many(changed.results, 'result')}."
            )
        )
