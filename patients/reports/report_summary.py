"""Page 1 of the CTC report: title, patient block, the trend chart and a summary.

The chart is patients.reports.charts' own figure, enlarged to the page; the
summary gives the latest count, the draws, the latest result's flags and the
upcoming cycles in a few sentences.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from patients import rules, wording
from patients.reports import chart_data, charts
from patients.reports.layout import (
    BODY,
    BODY_TOP,
    BOLD,
    LEFT,
    MUTED_COLOUR,
    PAGE_H_IN,
    PAGE_W_IN,
    WIDTH,
    Column,
    LaidOutRow,
    Style,
    draw_row,
    heading,
    lay_out_row,
    paragraph,
    text_cell,
    text_width,
    width_of,
)
from patients.reports.report_data import (
    NO_DRAWS_TEXT,
    ReportData,
    ReportDocument,
    cycle_state_text,
    flag_text,
    rate_of,
    results,
    upcoming_cycles,
)
from patients.reports.report_tables import RECIST_TERMS, clipped

# The trend chart on page 1, drawn at this size by charts.trend_figure.
CHART_W_IN = WIDTH / 72
CHART_H_IN = 5.7


# --- page 1 ---------------------------------------------------------------------


def first_page(doc: ReportDocument) -> None:
    """Title, patient block, the trend chart and a summary."""
    block = _patient_rows(doc)
    chart_top = BODY_TOP + TITLE_HEIGHT + sum(row.height for row in block) + 4
    page = doc.new_page(_chart_page_figure(doc.data.chart, top=chart_top))
    title = Style(size=18, bold=True)
    page.text(LEFT, page.y + 18, "CTC report", title)
    subtitle_x = LEFT + width_of("CTC report", title) + 14
    subtitle = "CellSearch circulating tumour cell counts"
    page.text(subtitle_x, page.y + 18, subtitle, Style(colour=MUTED_COLOUR))
    page.y += TITLE_HEIGHT
    for row, columns in zip(block, (PATIENT_COLUMNS,) * 3 + (CUTOFF_COLUMNS,), strict=True):
        draw_row(page, columns, row, pad=0)
    page.y = chart_top + CHART_H_IN * 72 + 8
    _summary(doc)


TITLE_HEIGHT = 30
PATIENT_COLUMNS = (Column("", 78), Column("", 232), Column("", 64), Column("", WIDTH - 374))
CUTOFF_COLUMNS = (Column("", 78), Column("", WIDTH - 78))
LABEL = Style(colour=MUTED_COLOUR)


def _patient_rows(doc: ReportDocument) -> list[LaidOutRow]:
    """The patient block as table rows without rules, so long values wrap, never overlap."""
    data = doc.data
    age = wording.age_in_years(data.birth_date, doc.local(data.generated_at).date())
    rows = [
        ("Patient", data.patient_name, "MRN", data.mrn),
        ("Date of birth", f"{wording.date_text(data.birth_date)} (age {age})", "Sex", data.sex),
        ("Cancer type", _cancer_type_text(data), "Oncologist", data.oncologist or "not recorded"),
    ]
    laid_out = [
        lay_out_row(
            PATIENT_COLUMNS,
            [
                text_cell(left, LABEL),
                text_cell(value, BOLD),
                text_cell(right, LABEL),
                text_cell(other, BOLD),
            ],
            pad=0,
        )
        for left, value, right, other in rows
    ]
    cutoff = [text_cell("Cut-off", LABEL), text_cell(_cutoff_sentence(data), BODY)]
    return [*laid_out, lay_out_row(CUTOFF_COLUMNS, cutoff, pad=0)]


def _chart_page_figure(chart: chart_data.ChartData, *, top: float) -> Figure:
    """Page 1 is the chart's own figure, enlarged to A4 with the chart kept in place.

    The chart is laid out once at its own size, the layout is frozen, and then
    the page grows around it: the chart stays vector (crisp, searchable) and
    exactly as charts.py drew it.
    """
    fig = charts.trend_figure(chart, width_in=CHART_W_IN, height_in=CHART_H_IN)
    _fit_legend_titles(fig, WIDTH)
    fig.draw_without_rendering()  # runs the constrained layout at the chart's size
    fig.set_layout_engine("none")
    old_w, old_h = fig.get_size_inches()
    left_in = LEFT / 72
    bottom_in = PAGE_H_IN - (top / 72 + CHART_H_IN)

    def moved(x: float, y: float) -> tuple[float, float]:
        return (x * old_w + left_in) / PAGE_W_IN, (y * old_h + bottom_in) / PAGE_H_IN

    for ax in fig.axes:
        box = ax.get_position()
        x0, y0 = moved(box.x0, box.y0)
        ax.set_position((x0, y0, box.width * old_w / PAGE_W_IN, box.height * old_h / PAGE_H_IN))
    for text in fig.texts:
        text.set_position(moved(*text.get_position()))
    fig.set_size_inches(PAGE_W_IN, PAGE_H_IN)
    chart_box = Bbox.from_bounds(left_in, bottom_in, old_w, old_h)
    for legend in fig.legends:
        # A figure legend is placed in its anchor box: make that the chart's area.
        legend.set_bbox_to_anchor(chart_box, transform=fig.dpi_scale_trans)
    return fig


def _fit_legend_titles(fig: Figure, width: float) -> None:
    """Break a legend title that is wider than the chart into lines at its wide gaps.

    The chart's key to its labels ("Flags:   a = ...   b = ...") is broken into
    lines for the chart's own width; on the page it is broken again for the page.
    """
    for legend in fig.legends:
        title = legend.get_title()
        size = title.get_fontsize()
        parts = title.get_text().replace("\n", "   ").split("   ")
        lines: list[str] = []
        for part in (p.strip() for p in parts if p.strip()):
            joined = f"{lines[-1]}   {part}" if lines else part
            if lines and text_width(joined, size) <= width:
                lines[-1] = joined
            else:
                lines.append(part)
        if len(lines) > 1:
            title.set_text("\n".join(lines))


def _cancer_type_text(data: ReportData) -> str:
    return data.cancer_type.capitalize() if data.cancer_type else "not recorded"


def _cutoff_sentence(data: ReportData) -> str:
    if data.cutoff is None:
        kind = data.cancer_type or "this cancer type"
        return f"no cut-off is set for {kind}: counts cannot be classified"
    return (
        f"{data.cutoff} or more CTC per 7.5 mL is unfavourable; "
        f"fewer than {data.cutoff} is favourable"
    )


def _summary(doc: ReportDocument) -> None:
    heading(doc, "Summary", keep_with=40)
    for lead, text in _summary_sentences(doc.data):
        paragraph(doc, text, lead=lead)


def _summary_sentences(data: ReportData) -> list[tuple[str, str]]:
    """(bold lead, text) pairs: the latest count, the draws, the latest flags, upcoming cycles."""
    if not data.assessments and not data.voided:
        sentences = [("", NO_DRAWS_TEXT)]
    else:
        sentences = [("Latest evaluable count: ", _latest_text(data)), _draw_counts(data)]
    # Pending and cancelled tubes are no result; a failed tube beside a sample is the sample's.
    flagged = [
        r
        for r in results(data.assessments)
        if r.beside is None
        and (r.evaluable or r.stands_for.draw.status in rules.NOT_EVALUABLE_STATUSES)
    ]
    latest = flagged[-1] if flagged else None
    if latest is not None and latest.flags:
        messages = "; ".join(f"{flag.message} ({flag.severity.value})" for flag in latest.flags)
        latest_on = wording.date_text(latest.stands_for.draw.drawn_on)
        sentences.append((f"Flags on the latest result ({latest_on}): ", messages + "."))
    if data.imaging:
        sentences.append(("Latest imaging: ", _imaging_text(data)))
    upcoming = upcoming_cycles(data)
    sentences += [_upcoming(data, *item) for item in upcoming[:UPCOMING_IN_SUMMARY]]
    if len(upcoming) > UPCOMING_IN_SUMMARY:
        more = len(upcoming) - UPCOMING_IN_SUMMARY
        sentences.append(("", f"{more} more upcoming cycles are in the cycles table."))
    return sentences


UPCOMING_IN_SUMMARY = 3


def _imaging_text(data: ReportData) -> str:
    """The latest imaging (every scan of its day): "CT on 2025-09-29: SD (stable disease)."."""
    day = max(p.performed_on for p in data.imaging)
    scans = [p for p in data.imaging if p.performed_on == day]
    said = "; ".join(
        f"{p.modality}: {RECIST_TERMS.get(p.response, p.response)}"
        + (f" ({clipped(p.note, IMAGING_NOTE_IN_SUMMARY)})" if p.note else "")
        for p in scans
    )
    return f"{wording.date_text(day)}, {said}."


IMAGING_NOTE_IN_SUMMARY = 200  # characters of an imaging note in the summary


def _latest_text(data: ReportData) -> str:
    evaluable = [a for a in data.assessments if a.evaluable]
    if not evaluable:
        return "none yet."
    latest = evaluable[-1]
    category = latest.category.value if latest.category else "not classified (no cut-off)"
    interval = f"; 95% interval {wording.interval_text(latest.ci95)}" if latest.ci95 else ""
    p = latest.p_at_or_above_cutoff
    chance = f"; {rules.chance_text(p)}" if p is not None and rules.chance_shown(p) else ""
    rate = wording.count_phrase(rate_of(latest), censored=latest.censored)
    tubes = len(latest.sample.sample.tubes) if latest.sample is not None else 1
    pooled = f" ({tubes} tubes pooled)" if tubes > 1 else ""
    on = wording.date_text(latest.draw.drawn_on)
    return f"{rate}{pooled} on {on}, {category}{interval}{chance}."


def _draw_counts(data: ReportData) -> tuple[str, str]:
    samples = [r for r in results(data.assessments) if r.evaluable]
    text = f"{len(data.assessments)} tubes recorded, {len(samples)} evaluable samples"
    pooled = sum(len(r.tubes) > 1 for r in samples)
    if pooled:
        text += f" ({pooled} of them pooled from tubes drawn together)"
    if data.voided:
        text += f"; {len(data.voided)} entered in error (listed, not assessed)"
    return ("Draws: ", text + ".")


def _upcoming(
    data: ReportData,
    line: rules.LineIn,
    cycle: rules.CycleIn,
    assessment: rules.CycleAssessment,
) -> tuple[str, str]:
    said = [cycle_state_text(assessment, data.assessments)]
    said += [flag_text(f) for f in assessment.flags]
    if not any(said):
        said = ["no flags"]
    lead = f"Upcoming L{line.line_number} C{cycle.number} "
    day_1 = wording.date_text(cycle.scheduled_date)
    return (lead, f"(day 1 {day_1}, {cycle.status}): {'; '.join(s for s in said if s)}.")
