"""patients.reports.charts.cache_key: a pure function of what the chart shows. No database."""

from __future__ import annotations

from datetime import date

from patients.reports import charts

KEY = {
    "patient_id": 42,
    "data_version": 7,
    "today": date(2026, 3, 1),
    "cutoffs": {"prostate": 5, "breast": 5, "colorectal": 3},
    "fmt": "svg",
}


def test_the_key_names_the_design_patient_version_day_cut_offs_and_format() -> None:
    design = charts.CHART_DESIGN
    expected = f"chart:{design}:42:7:2026-03-01:breast=5,colorectal=3,prostate=5:svg"
    assert charts.cache_key(**KEY) == expected


def test_the_key_changes_with_everything_the_chart_shows() -> None:
    changes = [
        {"patient_id": 43},
        {"data_version": 8},
        {"today": date(2026, 3, 2)},
        {"cutoffs": {"prostate": 5, "breast": 4, "colorectal": 3}},
        {"fmt": "png"},
    ]
    keys = {charts.cache_key(**(KEY | change)) for change in changes}
    assert len(keys) == len(changes)
    assert charts.cache_key(**KEY) not in keys


def test_the_order_of_the_cut_offs_does_not_matter() -> None:
    reordered = dict(reversed(list(KEY["cutoffs"].items())))
    assert charts.cache_key(**(KEY | {"cutoffs": reordered})) == charts.cache_key(**KEY)
