"""`python manage.py refresh_review_ranks`: recompute every cycle's stored review rank.

The rank (the worklist's sort key) is kept current by every write, but it also
depends on settings the rules read: `CTC_CUTOFFS`, `CTC_PRE_CYCLE_WINDOW_DAYS`
and `TIME_ZONE`. Run this after changing any of them (the worklist logs an
error naming the cycles whose stored rank disagrees with the rules). Safe to
run at any time and any number of times: it writes only ranks that changed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from patients.assessment import refresh_review_ranks
from patients.models import Patient


class Command(BaseCommand):
    help = "Recompute the worklist's review rank of every cycle (after a change of settings)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            changed = refresh_review_ranks(Patient.objects.values_list("pk", flat=True))
        self.stdout.write(self.style.SUCCESS(f"Review ranks changed: {changed:,} cycle(s)."))
