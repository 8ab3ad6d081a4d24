"""`python manage.py refresh_review_ranks`: recompute every stored rank of the worklist and
the results to review.

The ranks (each cycle's rank in each phase of its window, and each result's
place in the results to review) are kept current by every write, but they also
depend on the settings the rules read: `CTC_CUTOFFS`, `CTC_PRE_CYCLE_WINDOW_DAYS`,
`CTC_CLEAR_PROBABILITY`, `CTC_EXTRA_POISSON_CV` and `TIME_ZONE`. Run this after
changing any of them (the worklist logs an error naming the cycles whose stored
rank disagrees with the rules, the results to review the results). Safe to run
at any time and any number of times: it writes only ranks that changed.

One transaction, in rounds of `RANK_BATCH` patients, with a progress bar on
stderr: at 100,000 patients (1.8 million draws) it takes minutes
(bench/results.md).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from patients import wording
from patients.assessment import refresh_review_ranks
from patients.assessment.ranks import RANK_BATCH
from patients.models import Patient


class Command(BaseCommand):
    help = (
        "Recompute the stored ranks of the worklist and the results to review "
        "(after a change of the settings the rules read)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        cycles = results = 0
        with transaction.atomic():
            patient_ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
            with tqdm(
                total=len(patient_ids), desc="Ranking", unit="patient", file=self.stderr
            ) as bar:
                for start in range(0, len(patient_ids), RANK_BATCH):
                    batch = patient_ids[start : start + RANK_BATCH]
                    changed = refresh_review_ranks(batch)
                    cycles, results = cycles + changed.cycles, results + changed.results
                    bar.update(len(batch))
        self.stdout.write(
            self.style.SUCCESS(
                f"Review ranks changed: {wording.how_many(cycles, 'cycle')} and "
                f"{wording.how_many(results, 'result')}."
            )
        )
