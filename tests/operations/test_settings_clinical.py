"""The clinical settings read from the environment: the replicate variation and the clarity."""

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
        ("nan", "CTC_EXTRA_POISSON_CV='nan': use a number from 0.0 to 2.0"),
        ("-0.1", "CTC_EXTRA_POISSON_CV='-0.1': use a number from 0.0 to 2.0"),
        ("3", "CTC_EXTRA_POISSON_CV='3': use a number from 0.0 to 2.0"),
    ],
)
def test_a_replicate_cv_that_is_not_a_fraction_of_zero_or_more_is_refused(
    monkeypatch, value, message
):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_settings(monkeypatch, CTC_EXTRA_POISSON_CV=value)


def test_the_clear_probability_is_ninety_per_cent_unless_set(monkeypatch):
    monkeypatch.delenv("CTC_CLEAR_PROBABILITY", raising=False)

    assert load_settings(monkeypatch).CTC_CLEAR_PROBABILITY == 0.90
    assert load_settings(monkeypatch, CTC_CLEAR_PROBABILITY="0.8").CTC_CLEAR_PROBABILITY == 0.8


@pytest.mark.parametrize("value", ["0.4", "1.2", "90%", "inf"])
def test_a_clear_probability_that_is_not_from_one_half_to_one_is_refused(monkeypatch, value):
    with pytest.raises(ImproperlyConfigured, match=f"CTC_CLEAR_PROBABILITY='{value}'"):
        load_settings(monkeypatch, CTC_CLEAR_PROBABILITY=value)
