"""CTC_EXTRA_POISSON_CV: the lab's replicate variation, set by a person from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.operations.test_settings_database import load_settings


def test_the_replicate_cv_is_zero_unless_set(monkeypatch):
    monkeypatch.delenv("CTC_EXTRA_POISSON_CV", raising=False)

    assert load_settings(monkeypatch).CTC_EXTRA_POISSON_CV == 0.0


def test_the_replicate_cv_is_read_as_a_fraction(monkeypatch):
    assert load_settings(monkeypatch, CTC_EXTRA_POISSON_CV="0.18").CTC_EXTRA_POISSON_CV == 0.18


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("18%", "CTC_EXTRA_POISSON_CV='18%': use a number"),
        ("nan", "CTC_EXTRA_POISSON_CV='nan': use a finite number"),
        ("-0.1", "CTC_EXTRA_POISSON_CV=-0.1: it cannot be negative"),
    ],
)
def test_a_replicate_cv_that_is_not_a_fraction_of_zero_or_more_is_refused(
    monkeypatch, value, message
):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_settings(monkeypatch, CTC_EXTRA_POISSON_CV=value)
