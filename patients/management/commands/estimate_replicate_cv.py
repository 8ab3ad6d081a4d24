"""`python manage.py estimate_replicate_cv`: the lab's replicate variation, from its own tubes.

Prints the number of duplicate pairs (samples of exactly two evaluable,
uncensored tubes of equal volume) and the replicate cv as a fraction with its
bootstrap 95% interval, or "too few pairs" below 20, beside the current
`CTC_EXTRA_POISSON_CV`. It reads every patient's tubes (it runs as the system)
and never changes the setting: a person decides whether to set it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from patients import replicates
from patients.assessment.replicates import replicate_estimate
from patients.models import CTCDraw


class Command(BaseCommand):
    help = (
        "Estimate the replicate cv between tubes from the clinic's duplicate tubes "
        "(it never changes CTC_EXTRA_POISSON_CV)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        estimate = replicate_estimate(CTCDraw.objects.all())
        self.stdout.write(replicates.describe(estimate, settings.CTC_EXTRA_POISSON_CV))
