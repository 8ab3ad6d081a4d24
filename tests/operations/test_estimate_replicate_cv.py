"""`python manage.py estimate_replicate_cv`: the replicate cv from the clinic's duplicate tubes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from patients import replicates
from tests import builders
from tests.records.test_replicate_tubes import duplicates

pytestmark = pytest.mark.django_db

# 10 x (10, 20) and 10 x (5, 5): cv^2 = (10 * 70 - 10 * 10) / (2 * (2000 + 250)) = 2/15.
TWENTY_PAIRS = [(10, 20)] * 10 + [(5, 5)] * 10


def _run() -> str:
    out = StringIO()
    call_command("estimate_replicate_cv", stdout=out)
    return out.getvalue()


def test_it_prints_the_pairs_the_cv_and_its_bootstrap_interval(oncologist):
    # Two patients: the command reads every patient's tubes.
    duplicates(builders.patient(oncologist), oncologist, TWENTY_PAIRS[:13])
    duplicates(builders.patient(oncologist), oncologist, TWENTY_PAIRS[13:])
    interval = replicates.estimate_cv(sorted(TWENTY_PAIRS))

    printed = _run()

    assert printed == (
        f"20 duplicate pairs; replicate cv 0.37 (95% interval {interval.low:.2f} to "
        f"{interval.high:.2f}); this does not change CTC_EXTRA_POISSON_CV: a person decides "
        "to set it (now 0.0)\n"
    )
    assert interval.low < 0.37 < interval.high


def test_it_says_too_few_pairs_below_twenty(oncologist):
    duplicates(builders.patient(oncologist), oncologist, [(4, 6)] * 12)

    assert _run().startswith("too few pairs (12; at least 20 are needed); ")


def test_it_shows_the_setting_as_it_stands(oncologist, settings):
    settings.CTC_EXTRA_POISSON_CV = 0.2

    assert _run() == (
        "too few pairs (0; at least 20 are needed); this does not change "
        "CTC_EXTRA_POISSON_CV: a person decides to set it (now 0.2)\n"
    )
