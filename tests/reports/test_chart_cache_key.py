"""patients.reports.charts.cache_key: a pure function of what the chart shows. No database."""

from __future__ import annotations

from datetime import date

from patients import rules
from patients.reports import charts

KEY = {
    "patient_id": 42,
    "data_version": 7,
    "acknowledged": 12,
    "today": date(2026, 3, 1),
    "cutoffs": {"prostate": 5, "breast": 5, "colorectal": 3},
    "settings": rules.Settings(clear_probability=0.9, extra_poisson_cv=0.0, window_days=7),
    "time_zone": "Europe/London",
    "fmt": "svg",
}


def test_the_key_names_design_patient_version_acknowledgement_day_cut_offs_settings() -> None:
    design = charts.CHART_DESIGN
    expected = (
        f"chart:{design}:42:7:12:2026-03-01:breast=5,colorectal=3,prostate=5:"
        "clear_probability=0.9,extra_poisson_cv=0.0,window_days=7:Europe/London:svg"
    )
    assert charts.cache_key(**KEY) == expected


def test_the_key_changes_with_everything_the_chart_shows() -> None:
    changes = [
        {"patient_id": 43},
        {"data_version": 8},
        # An acknowledgement marks its points, without a new data version.
        {"acknowledged": 13},
        {"today": date(2026, 3, 2)},
        {"cutoffs": {"prostate": 5, "breast": 4, "colorectal": 3}},
        # The clarity threshold makes a flag high or review, the replicate variation
        # makes a rise or not: both change the labels drawn beside the points.
        {"settings": rules.Settings(clear_probability=0.95)},
        {"settings": rules.Settings(extra_poisson_cv=0.2)},
        {"settings": rules.Settings(window_days=5)},
        # The zone gives each draw its local date, where it is drawn on the x axis.
        {"time_zone": "America/New_York"},
        {"fmt": "png"},
    ]
    keys = {charts.cache_key(**(KEY | change)) for change in changes}
    assert len(keys) == len(changes)
    assert charts.cache_key(**KEY) not in keys


def test_the_order_of_the_cut_offs_does_not_matter() -> None:
    reordered = dict(reversed(list(KEY["cutoffs"].items())))
    assert charts.cache_key(**(KEY | {"cutoffs": reordered})) == charts.cache_key(**KEY)
