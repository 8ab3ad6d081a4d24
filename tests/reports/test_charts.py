"""Tests for patients.reports.charts: real SVG and PNG output from realistic series, no database.

The series are built with rules.assess_draws, as the views will build them.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D
from matplotlib.path import Path

from patients import rules
from patients.reports import chart_geometry, charts, sparkline
from patients.reports.chart_data import (
    DOXORUBICIN_COLOUR,
    LOWER_BOUND,
    ChartData,
    ChartIdentity,
    ImagingPoint,
)
from patients.reports.chart_text import chart_text_alternative
from patients.reports.invented import InventedSeries, chart_data
from tests.paths import ROOT

SVG_NS = "{http://www.w3.org/2000/svg}"
# As on a download: the identity line takes height from the plot.
IDENTITY = ChartIdentity("Doe, Jane", "MRN0001", date(1960, 5, 17), date(2025, 11, 10))

# --- building realistic series --------------------------------------------


_series = InventedSeries()
draw = _series.draw
line = _series.line
cycles_of = _series.cycles


def breast_conversion_data() -> ChartData:
    """Two lines, a conversion to unfavourable, a rejected draw, one 5 mL draw, imaging."""
    today = date(2025, 11, 10)
    first = line(1, date(2025, 3, 3), "Paclitaxel")
    second = line(2, date(2025, 8, 4), "Capecitabine")
    cycles = (
        *cycles_of(first, 7, every=21, today=today),
        *cycles_of(second, 6, every=21, today=today),
    )
    draws = [
        draw(date(2025, 2, 26), 14),
        draw(date(2025, 3, 20), 3),
        draw(date(2025, 4, 10), 1),
        draw(date(2025, 5, 1), status="rejected"),
        draw(date(2025, 5, 2), 0),
        draw(date(2025, 5, 22), 2),
        draw(date(2025, 6, 12), 9),
        draw(date(2025, 7, 3), 11),
        draw(date(2025, 7, 29), 9, volume="5.0"),
        draw(date(2025, 8, 21), 4),
        draw(date(2025, 9, 11), 2),
        draw(date(2025, 10, 23), 1),
    ]
    imaging = (
        ImagingPoint(date(2025, 4, 30), "CT", "PR"),
        ImagingPoint(date(2025, 6, 30), "CT", "PD"),
        ImagingPoint(date(2025, 6, 30), "Bone scan", "SD"),
        ImagingPoint(date(2025, 9, 29), "CT", "SD"),
    )
    return chart_data(
        "breast", draws, today=today, lines=(first, second), cycles=cycles, imaging=imaging
    )


def prostate_very_high_data() -> ChartData:
    """Counts in the thousands up to 20,000, a failed draw, CT and bone scan on the same days."""
    today = date(2025, 9, 1)
    first = line(1, date(2025, 1, 13), "Docetaxel")
    second = line(2, date(2025, 6, 16), "Cabazitaxel")
    cycles = (
        *cycles_of(first, 7, every=21, today=today),
        *cycles_of(second, 6, every=21, today=today),
    )
    counts = [
        (date(2025, 1, 8), 850),
        (date(2025, 1, 30), 420),
        (date(2025, 2, 20), 610),
        (date(2025, 3, 13), 1900),
        (date(2025, 4, 3), 4300),
        (date(2025, 5, 15), 7600),
        (date(2025, 6, 11), 12400),
        (date(2025, 7, 3), 20000),
        (date(2025, 7, 24), 9800),
        (date(2025, 8, 14), 6100),
    ]
    draws = [draw(on, count) for on, count in counts]
    draws.append(draw(date(2025, 4, 24), status="failed"))
    imaging = tuple(
        ImagingPoint(on, modality, response)
        for on, response in ((date(2025, 3, 31), "SD"), (date(2025, 6, 2), "PD"))
        for modality in ("CT", "Bone scan")
    ) + (ImagingPoint(date(2025, 8, 18), "PET-CT", "SD"),)
    return chart_data(
        "prostate", draws, today=today, lines=(first, second), cycles=cycles, imaging=imaging
    )


def empty_data() -> ChartData:
    today = date(2025, 11, 10)
    first = line(1, date(2025, 10, 6), "Docetaxel")
    cycles = tuple(cycles_of(first, 4, every=21, today=today))
    return chart_data("breast", [], today=today, lines=(first,), cycles=cycles)


def no_cutoff_data() -> ChartData:
    """A cancer type with no cut-off, with a weekly regimen and imaging."""
    today = date(2025, 6, 1)
    weekly = line(1, date(2025, 1, 13), "Paclitaxel weekly + Trastuzumab + Pertuzumab")
    cycles = tuple(cycles_of(weekly, 30, every=7, today=today))
    counts = [4, 4, 6, 3, 5, 5, 8, 2]
    draws = [draw(date(2025, 1, 9) + timedelta(days=21 * k), c) for k, c in enumerate(counts)]
    imaging = (ImagingPoint(date(2025, 4, 1), "CT", "SD"),)
    return chart_data(
        "melanoma", draws, today=today, lines=(weekly,), cycles=cycles, imaging=imaging
    )


def svg_text(data: ChartData) -> str:
    return charts.trend_svg(data).decode("utf-8")


def texts_of(svg: bytes) -> list[str]:
    """Every string drawn in the SVG (text is kept as text, not paths)."""
    root = ET.fromstring(svg)
    return ["".join(node.itertext()) for node in root.iter(f"{SVG_NS}text")]


def rendered(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()
    return fig


# --- the trend chart: what it says ----------------------------------------


def test_the_svg_is_well_formed_xml():
    root = ET.fromstring(charts.trend_svg(breast_conversion_data()))
    assert root.tag == f"{SVG_NS}svg"


def test_the_chart_labels_the_y_axis_in_ctcs_per_7_5_ml():
    assert "CTCs per 7.5 mL" in texts_of(charts.trend_svg(breast_conversion_data()))


def test_the_cut_off_line_is_labelled_with_its_value_and_cancer_type():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert "Cut-off 5" in texts
    assert "(breast)" in texts


def test_the_day_1_of_each_cycle_is_labelled_c1_c2():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert {"C1", "C2", "C3", "C7"} <= set(texts)


def test_therapy_lines_are_named_by_regimen():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert "L1 Paclitaxel" in texts
    assert "L2 Capecitabine" in texts


def test_imaging_dates_carry_their_recist_response():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert {"CT: PR", "CT: PD", "Bone scan: SD"} <= set(texts)


def test_an_imaging_label_however_long_is_cut_and_leaves_the_plot_its_room():
    data = breast_conversion_data()
    long_label = ImagingPoint(date(2025, 4, 30), "Whole-body diffusion MRI " * 400, "PR")
    data = chart_data(
        "breast", [draw(date(2025, 3, 20), 3)], today=date(2025, 11, 10), imaging=(long_label,)
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when the plot collapses to nothing
        texts = texts_of(charts.trend_svg(data))

    (label,) = [t for t in texts if t.startswith("Whole-body")]
    assert label.endswith("…") and len(label) < 40


def test_a_rejected_draw_is_marked_not_evaluable():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert "not evaluable" in texts


def test_a_conversion_to_unfavourable_is_labelled_beside_its_marker():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert any(text.startswith("↑ conv.") for text in texts)
    # The legend's title is the key to the short words.
    assert any("↑ conv. = converted to unfavourable" in text for text in texts)


def test_a_conversion_to_favourable_is_labelled_too():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    # 3 cells after 11, between whiskers and below the cut-off line: the flag's words
    # are kept when there is no room for its chance too (the tooltip has it).
    assert "↓ conv." in texts


def test_the_legend_names_both_categories_the_interval_and_the_cut_off():
    texts = set(texts_of(charts.trend_svg(breast_conversion_data())))
    assert {"favourable", "unfavourable", "not evaluable", "95% interval", "cut-off"} <= texts


def test_a_draw_of_non_standard_volume_gets_an_open_marker_and_a_legend_entry():
    texts = texts_of(charts.trend_svg(breast_conversion_data()))
    assert "open: non-standard volume" in texts


def test_the_chart_never_says_progression_or_change_therapy():
    for build in (breast_conversion_data, prostate_very_high_data, empty_data, no_cutoff_data):
        data = build()
        svg = svg_text(data).lower()
        alternative = chart_text_alternative(data).lower()
        for words in ("progression", "change therapy"):
            assert words not in svg
            assert words not in alternative


def test_pending_and_cancelled_draws_are_not_plotted():
    today = date(2025, 6, 1)
    draws = [
        draw(date(2025, 3, 1), 2),
        draw(date(2025, 4, 1), status="pending"),
        draw(date(2025, 5, 1), status="cancelled"),
        draw(date(2025, 5, 8), 3),
    ]
    fig = charts.trend_figure(chart_data("breast", draws, today=today))
    trace = next(ln for ln in fig.axes[0].lines if ln.get_color() == charts.TRACE_COLOUR)
    assert len(trace.get_xdata()) == 2
    assert "not evaluable" not in [t.get_text() for t in fig.axes[0].texts]


def test_x_axis_shows_true_dates_from_the_first_draw_to_today():
    data = breast_conversion_data()
    x0, x1 = charts.trend_figure(data).axes[0].get_xlim()
    assert x0 < date2num(date(2025, 2, 26)) < date2num(data.today) < x1


# --- samples, lower bounds, the chance and doxorubicin ------------------------


def point_artists(fig: Figure) -> list[Line2D]:
    """The markers of the evaluable samples: one Line2D per style, no line between."""
    ax = fig.axes[0]
    return [
        ln
        for ln in ax.lines
        if ln.get_linestyle() == "None" and ln.get_zorder() == 4 and ln.get_marker() != "x"
    ]


def plotted_xy(fig: Figure) -> list[tuple[float, float]]:
    return sorted(
        (float(x), float(y))
        for ln in point_artists(fig)
        for x, y in zip(ln.get_xdata(), ln.get_ydata(), strict=True)
    )


def labels_at(fig: Figure, on: date) -> list[str]:
    """The texts drawn beside the point of the sample drawn on `on`."""
    x = date2num(on)
    return [t.get_text() for t in fig.axes[0].texts if getattr(t, "xy", (None,))[0] == x]


def test_tubes_drawn_together_are_one_point_labelled_with_their_number():
    today = date(2025, 11, 1)
    draws = [
        draw(date(2025, 9, 3), 2),
        draw(date(2025, 10, 1), 4),
        draw(date(2025, 10, 1), 6),
        draw(date(2025, 10, 1), status="rejected"),
    ]

    fig = charts.trend_figure(chart_data("breast", draws, today=today))

    # 10 cells in 15 mL: one point at 5 per 7.5 mL, not two at 4 and 6.
    assert plotted_xy(fig) == [
        (date2num(date(2025, 9, 3)), 2.0),
        (date2num(date(2025, 10, 1)), 5.0),
    ]
    trace = next(ln for ln in fig.axes[0].lines if ln.get_color() == charts.TRACE_COLOUR)
    assert len(trace.get_xdata()) == 2
    assert labels_at(fig, date(2025, 10, 1)) == ["↑ conv., 52% ≥ cut-off, 2 tubes"]
    # The rejected tube drawn with the sample is not a missing result.
    assert "not evaluable" not in [t.get_text() for t in fig.axes[0].texts]
    assert not [ln for ln in fig.axes[0].lines if ln.get_marker() == "x" and len(ln.get_xdata())]


def censored_data() -> ChartData:
    today = date(2025, 11, 1)
    draws = [draw(date(2025, 8, 6), 3), draw(date(2025, 9, 3), 1000, more_than=True)]
    return chart_data("breast", draws, today=today)


def test_a_lower_bound_is_an_upward_marker_at_its_bound_labelled_more_than():
    fig = charts.trend_figure(censored_data())
    x = date2num(date(2025, 9, 3))

    (bound,) = [ln for ln in point_artists(fig) if x in ln.get_xdata()]
    assert list(bound.get_ydata()) == [1000.0]
    # The marker's path lies at and above the point: it rises from the bound.
    marker = bound.get_marker()
    assert isinstance(marker, Path)
    assert marker.vertices[:, 1].min() == 0 and marker.vertices[:, 1].max() > 0
    assert bound.get_markerfacecolor() == LOWER_BOUND.colour
    assert labels_at(fig, date(2025, 9, 3)) == ["↑ conv., rise, > 1000"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "more than (a lower bound)" in legend


def test_a_lower_bound_has_a_lower_whisker_only():
    data = censored_data()
    fig = charts.trend_figure(data)
    x = date2num(date(2025, 9, 3))
    low, high = data.assessments[-1].ci95
    assert high is None

    whiskers = [
        (float(px), float(py))
        for ln in fig.axes[0].lines
        if ln.get_alpha() == 0.6  # the intervals' whiskers and caps
        for px, py in zip(ln.get_xdata(), ln.get_ydata(), strict=True)
        if px == x
    ]

    ys = sorted(y for _, y in whiskers)
    assert ys[0] == pytest.approx(low)
    assert max(ys) == 1000.0  # up to the bound, never above it
    caps = [
        y
        for ln in fig.axes[0].lines
        if ln.get_marker() == "_"
        for xx, y in zip(ln.get_xdata(), ln.get_ydata(), strict=True)
        if xx == x
    ]
    assert caps == [pytest.approx(low)]  # a cap at the lower limit, none above


def test_the_chance_is_beside_a_point_near_the_cut_off_and_not_beside_a_clear_one():
    today = date(2025, 11, 1)
    draws = [
        draw(date(2025, 6, 4), 1),  # 2%: clearly favourable
        draw(date(2025, 7, 2), 5),  # 53%: near the cut-off
        draw(date(2025, 8, 6), 9),  # 95.3%: clearly unfavourable
    ]

    fig = charts.trend_figure(chart_data("breast", draws, today=today))

    assert labels_at(fig, date(2025, 7, 2)) == ["↑ conv., 53% ≥ cut-off"]
    assert not any("%" in text for text in labels_at(fig, date(2025, 6, 4)))
    assert labels_at(fig, date(2025, 8, 6)) == ["persist."]
    title = fig.legends[0].get_title().get_text()
    assert "n% ≥ cut-off = chance that the true count is at or above the cut-off" in title


def doxorubicin_data(*, doxorubicin: bool) -> ChartData:
    today = date(2025, 11, 1)
    therapy = line(1, date(2025, 9, 1), "AC", doxorubicin=doxorubicin)
    cycles = tuple(cycles_of(therapy, 4, every=21, today=today))
    draws = [draw(date(2025, 8, 28), 2), draw(date(2025, 9, 4), 6), draw(date(2025, 9, 19), 2)]
    return chart_data("breast", draws, today=today, lines=(therapy,), cycles=cycles)


def doxorubicin_bands(fig: Figure) -> list[tuple[float, float]]:
    colour = to_rgba(DOXORUBICIN_COLOUR, 0.25)
    return sorted(
        (p.get_x(), p.get_x() + p.get_width())
        for p in fig.axes[0].patches
        if p.get_facecolor() == pytest.approx(colour)
    )


def test_days_1_to_6_after_each_doxorubicin_dose_are_shaded_and_named_in_the_legend():
    fig = charts.trend_figure(doxorubicin_data(doxorubicin=True))

    # Doses on 1 Sep, 22 Sep and 13 Oct (given); 3 Nov is still planned.
    doses = [date(2025, 9, 1), date(2025, 9, 22), date(2025, 10, 13)]
    expected = [
        (date2num(d + timedelta(days=1)) - 0.5, date2num(d + timedelta(days=6)) + 0.5)
        for d in doses
    ]
    assert doxorubicin_bands(fig) == expected
    assert "doxorubicin window" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_no_doxorubicin_band_without_doxorubicin():
    fig = charts.trend_figure(doxorubicin_data(doxorubicin=False))

    assert doxorubicin_bands(fig) == []
    assert "doxorubicin window" not in [t.get_text() for t in fig.legends[0].get_texts()]


# --- special cases ----------------------------------------------------------


def test_a_patient_with_no_draws_gets_a_chart_that_says_so():
    texts = texts_of(charts.trend_svg(empty_data()))
    assert "No CTC draws recorded yet" in texts
    assert "CTCs per 7.5 mL" in texts
    assert "Cut-off 5" in texts


def test_a_patient_with_no_draws_and_no_lines_still_gets_a_chart():
    data = chart_data("breast", [], today=date(2025, 1, 1))
    assert "No CTC draws recorded yet" in texts_of(charts.trend_svg(data))


def test_a_cancer_type_without_cut_off_gets_a_note_and_no_cut_off_line():
    data = no_cutoff_data()
    assert data.cutoff is None
    texts = texts_of(charts.trend_svg(data))
    assert "No cut-off for melanoma: counts cannot be classified" in texts
    assert not any(text.startswith("Cut-off") for text in texts)
    assert "unfavourable" not in texts and "favourable" not in texts
    assert "count (not classified)" in texts


def test_counts_of_0_and_20000_render_on_a_symlog_axis():
    draws = [draw(date(2025, 1, 6), 0), draw(date(2025, 2, 3), 20000), draw(date(2025, 3, 3), 0)]
    data = chart_data("prostate", draws, today=date(2025, 3, 20))
    fig = charts.trend_figure(data)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    bottom, top = ax.get_ylim()
    assert bottom < 0 < 20000 < top
    assert charts.trend_png(data).startswith(b"\x89PNG")


def test_the_y_ticks_are_plain_numbers_including_zero():
    fig = rendered(charts.trend_figure(prostate_very_high_data()))
    labels = [label.get_text() for label in fig.axes[0].get_yticklabels()]
    assert labels[0] == "0"
    assert "1,000" in labels and "10,000" in labels
    assert not any("^" in label or "e" in label for label in labels)


def _count_of_12_from_mid_october() -> ChartData:
    return chart_data(
        "breast",
        [draw(date(2026, 10, 20), 3), draw(date(2026, 11, 17), 12)],
        today=date(2026, 12, 3),
        lines=(line(1, date(2026, 10, 18), "Paclitaxel"),),
    )


def test_a_count_of_12_is_ticked_up_to_20_not_50():
    """Its interval reaches 21: a tick at 50 would promise data up there."""
    fig = rendered(charts.trend_figure(_count_of_12_from_mid_october()))

    labels = [label.get_text() for label in fig.axes[0].get_yticklabels()]

    assert labels[-1] == "20"
    assert {"0", "2", "5", "10"} <= set(labels)


def _low_counts_data() -> ChartData:
    """Counts of 0 to 2 on one line, as many patients on treatment have."""
    today = date(2025, 11, 10)
    therapy = line(1, date(2025, 6, 2), "Paclitaxel")
    counts = [2, 1, 0, 2, 1, 0, 2]
    draws = [draw(date(2025, 5, 29) + timedelta(days=21 * k), c) for k, c in enumerate(counts)]
    cycles = tuple(cycles_of(therapy, 8, every=21, today=today))
    return chart_data("breast", draws, today=today, lines=(therapy,), cycles=cycles)


def _room_above_highest_tick_pt(fig: Figure) -> float:
    """Points between the highest y tick and the top edge of the plot, as drawn."""
    ax = fig.axes[0]
    top_tick = max(ax.get_yticks())
    tick_px = ax.transData.transform((0, top_tick))[1]
    return float((ax.bbox.y1 - tick_px) * 72 / fig.dpi)


def test_low_counts_fill_the_plot_with_no_band_of_empty_headroom():
    """Above the highest tick, only the room the therapy lines' strip needs, not a third."""
    data = _low_counts_data()
    fig = rendered(charts.trend_figure(data, identity=IDENTITY))
    ax = fig.axes[0]
    height_pt = ax.bbox.height * 72 / fig.dpi
    room = _room_above_highest_tick_pt(fig)

    assert max(ax.get_yticks()) == 10  # the region just above the cut-off of 5
    assert room <= 0.2 * height_pt
    assert room >= charts.LINE_STRIP_PT  # the tick stays clear of the strip


def test_many_rows_of_imaging_labels_get_the_headroom_they_need():
    """Five scans on one day: five rows of labels, every one above the highest whisker."""
    today = date(2025, 11, 10)
    scans = tuple(
        ImagingPoint(date(2025, 9, 1), modality, "SD")
        for modality in ("CT", "Bone scan", "PET-CT", "MRI", "Ultrasound")
    )
    data = chart_data(
        "breast",
        [draw(date(2025, 8, 1), 40), draw(date(2025, 9, 3), 60)],
        today=today,
        imaging=scans,
    )
    fig = rendered(charts.trend_figure(data))
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text().endswith(": SD")]
    lowest_label = min(t.get_window_extent(renderer).y0 for t in labels)
    highest_whisker = ax.transData.transform((0, max(a.ci95[1] for a in data.assessments)))[1]

    assert len(labels) == 5
    assert highest_whisker < lowest_label


def test_a_range_starting_mid_month_names_the_month_on_its_first_tick():
    fig = rendered(charts.trend_figure(_count_of_12_from_mid_october()))

    labels = [label.get_text() for label in fig.axes[0].get_xticklabels()]

    assert labels[0] == "15 Oct"  # not a bare "15": which month is it?
    assert "Nov" in labels and "Dec" in labels


def test_a_weekly_regimen_keeps_every_cycle_tick_and_labels_do_not_overlap():
    today = date(2025, 12, 20)
    weekly = line(1, date(2025, 1, 6), "Paclitaxel weekly")
    cycles = tuple(cycles_of(weekly, 50, every=7, today=today))
    data = chart_data(
        "breast", [draw(date(2025, 1, 2), 4)], today=today, lines=(weekly,), cycles=cycles
    )
    fig = rendered(charts.trend_figure(data))
    labels = [t for t in fig.axes[0].texts if t.get_text().startswith("C")]
    assert 10 < len(labels) < 50
    extents = sorted((t.get_window_extent() for t in labels), key=lambda box: box.x0)
    assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(extents))


@pytest.mark.parametrize(
    "build", [breast_conversion_data, prostate_very_high_data, empty_data, no_cutoff_data]
)
def test_no_two_labels_in_the_plot_overlap_and_none_is_cut_off(build):
    fig = rendered(charts.trend_figure(build()))
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    ax = fig.axes[0]
    texts = list(ax.texts)
    boxes = [t.get_window_extent(renderer) for t in texts]
    for (a, box_a), (b, box_b) in itertools.combinations(zip(texts, boxes, strict=True), 2):
        assert not box_a.overlaps(box_b), (a.get_text(), b.get_text())
    everything = [*ax.texts, *fig.legends[0].get_texts(), *ax.get_yticklabels()]
    for text in everything:
        box = text.get_window_extent(renderer)
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1, text.get_text()
        assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1, text.get_text()


def _daily_draws(count: int) -> ChartData:
    """A draw a day, counts around the cut-off: many flags, far more than labels fit."""
    start = date(2020, 1, 6)
    counts = [1, 7, 0, 12, 3, 30, 4, 2, 9]
    draws = [draw(start + timedelta(days=k), counts[k % len(counts)]) for k in range(count)]
    return chart_data("breast", draws, today=start + timedelta(days=count + 2))


def test_a_long_series_costs_a_few_artists_and_only_the_labels_that_fit():
    """A PNG or the PDF draws a thousand points as one artist per marker style, and
    labels only where they fit; the SVG keeps an artist per point for its tooltips."""
    long, short = _daily_draws(1000), _daily_draws(100)
    fig = charts.trend_figure(long)
    with_ids = charts.trend_figure(long, point_ids=True)

    assert len(fig.axes[0].lines) < 12
    assert len(with_ids.axes[0].lines) > 1000
    assert sorted(plotted_xy(fig)) == sorted(plotted_xy(with_ids))
    # No more labels than the plot has room for, however many points are flagged.
    texts = len(fig.axes[0].texts)
    assert texts <= len(charts.trend_figure(short).axes[0].texts) + 40
    assert texts < 150


# --- output formats ---------------------------------------------------------


def test_the_png_has_the_png_signature_and_the_expected_size():
    png = charts.trend_png(breast_conversion_data(), dpi=100)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(io.BytesIO(png))
    assert pixels.shape[:2] == (420, 900)


def test_the_same_data_renders_byte_identical_svg_twice():
    data = breast_conversion_data()
    assert charts.trend_svg(data) == charts.trend_svg(data)


def test_the_same_data_renders_byte_identical_png_twice():
    data = prostate_very_high_data()
    assert charts.trend_png(data) == charts.trend_png(data)


def test_the_svg_carries_no_date():
    assert b"<dc:date>" not in charts.trend_svg(breast_conversion_data())


def test_the_figure_builder_can_be_reused_at_another_size_for_the_pdf_report():
    fig = charts.trend_figure(breast_conversion_data(), width_in=10.5, height_in=5)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    assert buffer.getvalue().startswith(b"%PDF")


def test_the_module_never_imports_pyplot_or_django():
    check = (
        "import patients.reports.charts, sys; "
        "assert 'matplotlib.pyplot' not in sys.modules; "
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- the sparkline ----------------------------------------------------------


def test_the_sparkline_is_a_small_valid_svg_with_one_point_per_evaluable_draw():
    svg = sparkline.sparkline_svg([12.0, 3.0, None, 0.0, 8.0], 5)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("viewBox") == "0 0 120 28"
    assert len(root.findall(f"{ns}circle")) == 3  # 12, 3 and 0; the last (8) is a triangle
    assert len(root.findall(f"{ns}polygon")) == 1
    assert len(root.findall(f"{ns}line")) == 1  # the cut-off
    assert len(svg) < 2_000


def test_the_sparkline_of_an_assessed_series_has_one_point_per_sample():
    draws = [
        draw(date(2025, 9, 3), 2),
        draw(date(2025, 10, 1), 4),
        draw(date(2025, 10, 1), 6),
        draw(date(2025, 10, 1), status="rejected"),
        draw(date(2025, 10, 29), 1000, more_than=True),
    ]
    found = rules.assess_draws(draws, [], [], cancer_type="breast", cutoff=5)

    root = ET.fromstring(sparkline.assessed_sparkline_svg(found, 5))

    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}circle")) == 2  # 2, then the pooled 5; the last is a triangle
    assert len(root.findall(f"{ns}polygon")) == 1
    assert root.get("aria-label") == "CTC per 7.5 mL, oldest to newest: 2, 5, > 1000; cut-off 5"


def test_the_sparkline_says_what_it_shows_for_screen_readers():
    root = ET.fromstring(sparkline.sparkline_svg([12.0, None, 1.5], 5))

    assert root.get("role") == "img"
    assert root.get("aria-label") == (
        "CTC per 7.5 mL, oldest to newest: 12, not evaluable, 1.5; cut-off 5"
    )


def test_the_sparkline_draws_higher_counts_higher():
    root = ET.fromstring(sparkline.sparkline_svg([0.0, 20000.0], None))
    ns = "{http://www.w3.org/2000/svg}"

    low, high = (float(c.get("cy")) for c in root.findall(f"{ns}circle"))

    assert high < low  # SVG y grows downwards


def test_the_sparkline_is_ready_to_inline_in_html():
    svg = sparkline.sparkline_svg([3.0, 8.0], 5)
    assert svg.startswith(b"<svg")
    assert b"<!DOCTYPE" not in svg and b"<metadata" not in svg


def test_the_sparkline_handles_no_evaluable_draws_and_no_cut_off():
    for rates, cutoff in (([], 5), ([None, None], 5), ([2.0, 30.0], None), ([0.0], 3)):
        ET.fromstring(sparkline.sparkline_svg(rates, cutoff))


def test_the_sparkline_is_deterministic():
    assert sparkline.sparkline_svg([1.0, 20000.0], 5) == sparkline.sparkline_svg([1.0, 20000.0], 5)


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
def test_the_sparkline_symlog_is_matplotlibs_to_the_last_bit(y):
    assert chart_geometry.symlog_scalar(y) == chart_geometry.symlog(y)


def test_the_sparkline_symlog_matches_over_every_rate_to_a_tenth_up_to_30000():
    # One in tens of thousands of these differs in the last bit with math.log.
    rates = np.arange(300_001) / 10
    expected = chart_geometry.SYMLOG.transform(rates.reshape(-1, 1))[:, 0]

    assert [chart_geometry.symlog_scalar(float(r)) for r in rates] == expected.tolist()


@pytest.mark.parametrize("y", [0.0, 1.0, 9.999, 10.0, 10.000001, 12.5, 5e3, 2e4, -3.0, -40.0])
def test_the_sparkline_symlog_matches_at_the_edges(y):
    assert chart_geometry.symlog_scalar(y) == chart_geometry.symlog(y)


@given(
    rates=st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=30000)), max_size=12),
    cutoff=st.sampled_from([None, 3, 5]),
)
def test_the_sparkline_is_the_one_matplotlibs_transform_draws(rates, cutoff):
    ours = sparkline.sparkline_svg(rates, cutoff)
    with pytest.MonkeyPatch.context() as patch:
        # The reference it replaced.
        patch.setattr(sparkline, "symlog_scalar", chart_geometry.symlog)
        reference = sparkline.sparkline_svg(rates, cutoff)

    assert ours == reference


# --- the text alternative ---------------------------------------------------


def test_the_text_alternative_gives_the_latest_count_category_and_number_of_draws():
    text = chart_text_alternative(breast_conversion_data())
    assert "Latest CTC count 1 CTC/7.5 mL on Thu 23 Oct 2025, favourable (cut-off 5)" in text
    assert "12 draws (11 evaluable)" in text
    assert "down from 2 CTC/7.5 mL on Thu 11 Sep 2025" in text


def test_the_text_alternative_quotes_the_flags_of_the_latest_draw():
    draws = [draw(date(2025, 1, 6), 1), draw(date(2025, 2, 3), 9)]
    text = chart_text_alternative(chart_data("breast", draws, today=date(2025, 3, 1)))
    assert "Latest CTC count 9 CTC/7.5 mL on Mon 3 Feb 2025, unfavourable (cut-off 5)" in text
    assert "up from 1 CTC/7.5 mL" in text
    assert "Converted to unfavourable" in text


def test_the_text_alternative_says_when_the_latest_draw_was_not_evaluable():
    draws = [draw(date(2025, 1, 6), 0), draw(date(2025, 2, 3), status="failed")]
    text = chart_text_alternative(chart_data("breast", draws, today=date(2025, 3, 1)))
    assert "none detected in 7.5 mL" in text
    assert "Not evaluable (failed" in text


def test_the_text_alternative_speaks_of_samples_lower_bounds_and_the_chance():
    draws = [
        draw(date(2025, 8, 6), 1000, more_than=True),
        draw(date(2025, 9, 3), 4),
        draw(date(2025, 9, 3), 6),
    ]
    text = chart_text_alternative(chart_data("breast", draws, today=date(2025, 10, 1)))

    assert (
        "Latest CTC count 5 CTC/7.5 mL (2 tubes pooled) on Wed 3 Sep 2025, unfavourable (cut-off "
        "5), "
        "chance that the true count is at or above the cut-off: about 52%, "
        "down from > 1000 CTC/7.5 mL on Wed 6 Aug 2025; 2 draws (2 evaluable)." in text
    )
    assert "A count shown as more than a number is a lower bound." in text


def test_the_text_alternative_never_calls_a_change_from_a_lower_bound_a_fall():
    draws = [draw(date(2025, 8, 6), 1000, more_than=True), draw(date(2025, 9, 3), 1200)]
    text = chart_text_alternative(chart_data("breast", draws, today=date(2025, 10, 1)))

    # 1200 after "more than 1000" may be higher or lower than the first count.
    assert ", after > 1000 CTC/7.5 mL on Wed 6 Aug 2025" in text
    assert "up from" not in text and "down from" not in text


def test_the_text_alternative_handles_no_draws():
    assert chart_text_alternative(empty_data()) == "No CTC draws recorded yet."


def test_the_text_alternative_does_not_classify_without_a_cut_off():
    draws = [draw(date(2025, 1, 6), 4)]
    text = chart_text_alternative(chart_data("melanoma", draws, today=date(2025, 2, 1)))
    assert "not classified (no cut-off for melanoma)" in text
    assert "1 draw (1 evaluable)" in text


def test_the_sparkline_spaces_its_points_by_date():
    on = date(2025, 1, 1)
    days = [on, on + timedelta(days=7), on + timedelta(days=28)]
    root = ET.fromstring(sparkline.sparkline_svg([1.0, 2.0, 3.0], 5, days=days))

    xs = [float(c.get("cx")) for c in root.iter(f"{SVG_NS}circle")]
    first, second, last = xs
    # One week then three: the second gap is three times the first.
    assert (last - second) == pytest.approx(3 * (second - first), abs=0.2)


def test_the_assessed_sparkline_is_spaced_by_the_days_drawn():
    on = date(2025, 1, 1)
    draws = [draw(on, 1), draw(on + timedelta(days=7), 2), draw(on + timedelta(days=28), 3)]
    found = rules.assess_draws(draws, (), (), cancer_type="breast", cutoff=5)
    root = ET.fromstring(sparkline.assessed_sparkline_svg(found, 5))

    first, second, last = [float(c.get("cx")) for c in root.iter(f"{SVG_NS}circle")]
    assert (last - second) == pytest.approx(3 * (second - first), abs=0.2)
