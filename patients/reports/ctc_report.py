"""The printable CTC report: what goes on it, for tumour boards and the paper chart.

Plain data in, PDF bytes out: no Django, no database, no clock (the caller
passes `generated_at`). Every category and flag shown comes from
patients.rules, every value is worded by patients.wording, and the trend chart
is patients.reports.charts' own figure, so the report cannot disagree with the
screens. The pages, text flow and tables are patients.reports.layout's; this
module says what goes where.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from patients import rules, wording
from patients.reports import charts
from patients.reports.layout import (
    BODY,
    BODY_TOP,
    BOLD,
    CELL,
    CELL_BOLD,
    FOOTER,
    LEFT,
    MARGIN,
    MUTED_COLOUR,
    PAGE_H,
    PAGE_H_IN,
    PAGE_W_IN,
    RIGHT,
    RULE_COLOUR,
    SMALL_PT,
    TABLE_PT,
    WIDTH,
    Cell,
    Column,
    Document,
    LaidOutRow,
    Page,
    Style,
    draw_row,
    heading,
    lay_out_row,
    paragraph,
    pdf_bytes,
    table,
    text_cell,
    text_width,
    width_of,
    wrap,
)


@dataclass(frozen=True)
class VoidedDraw:
    """A draw marked "entered in error": listed, struck through, never assessed."""

    drawn_at: datetime  # aware
    ctc_count: int | None
    status: str
    error_reason: str


@dataclass(frozen=True)
class ReportData:
    patient_name: str
    mrn: str
    birth_date: date
    sex: str  # display label
    cancer_type: str  # "breast", "prostate", "colorectal"
    cutoff: int | None  # per 7.5 mL, inclusive; None: cannot be classified
    oncologist: str  # display name or ""
    chart: charts.ChartData
    assessments: Sequence[rules.DrawAssessment]  # oldest first, evaluable or not
    voided: Sequence[VoidedDraw]
    # Every cycle with its line and assessment. Only the assessments of upcoming
    # (planned or delayed) cycles are read; the others may be None.
    cycles: Sequence[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment | None]]
    imaging: Sequence[charts.ImagingPoint]
    accessions: Mapping[int, str]  # draw id -> accession (may be missing)
    comments: Mapping[int, str]  # draw id -> comment (may be missing)
    time_zone: str  # e.g. "Europe/London": times in the report are shown in it
    generated_at: datetime  # aware
    generated_by: str  # username or full name
    # CycleIn carries no reason: cycle id -> why it was delayed or cancelled.
    cycle_reasons: Mapping[int, str] = field(default_factory=dict)
    pre_cycle_window_days: int = rules.DEFAULT_PRE_CYCLE_WINDOW_DAYS


HIGH_COLOUR = charts.UNFAVOURABLE_COLOUR
CELL_HIGH = Style(size=TABLE_PT, bold=True, colour=HIGH_COLOUR)
CELL_NOTE = Style(size=TABLE_PT, italic=True, colour=MUTED_COLOUR)
CELL_VOID = Style(size=TABLE_PT, colour=MUTED_COLOUR, struck=True)  # entered in error
CELL_ERROR = Style(size=TABLE_PT, bold=True, colour=HIGH_COLOUR)

# The trend chart on page 1, drawn at this size by charts.trend_figure.
CHART_W_IN = WIDTH / 72
CHART_H_IN = 5.7

DASH = "—"
NOTE_LIMIT = 400  # characters of a comment or reason shown in a table cell
NO_DRAWS_TEXT = "No CTC draws recorded."

# Short words for the table's flags column, one per code.
FLAG_WORDS: dict[str, str] = {
    rules.FlagCode.UNFAVOURABLE: "unfavourable",
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: "conversion to unfavourable",
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: "still unfavourable",
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: "conversion to favourable",
    rules.FlagCode.RISE_BEYOND_NOISE: "rise beyond counting noise",
    rules.FlagCode.NON_STANDARD_VOLUME: "non-standard volume",
    rules.FlagCode.DOXORUBICIN_WINDOW: "doxorubicin window",
    rules.FlagCode.MISSING_PRE_CYCLE_DRAW: "missing pre-cycle draw",
    rules.FlagCode.NOT_EVALUABLE: "not evaluable",
    rules.FlagCode.NO_CUTOFF: "no cut-off",
}

# One short paragraph per flag, from the meaning in docs/clinical-rules.md.
# "{window}" is the pre-cycle window in days, "{cutoff}" the patient's cut-off.
FLAG_EXPLANATIONS: dict[str, str] = {
    rules.FlagCode.UNFAVOURABLE: (
        "The count is at or above the cut-off for this cancer type ({cutoff} or more CTC "
        "per 7.5 mL)."
    ),
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: (
        "The previous evaluable draw was favourable and this draw is unfavourable."
    ),
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: (
        "The previous evaluable draw was unfavourable and this draw is unfavourable again."
    ),
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: (
        "The previous evaluable draw was unfavourable and this draw is favourable."
    ),
    rules.FlagCode.RISE_BEYOND_NOISE: (
        "The count per 7.5 mL at least doubled and the exact test for two Poisson counts finds the "
        "rise larger than counting noise: one-sided p < 0.05 against the previous "
        "evaluable draw, or p < 0.01 against the lowest earlier count of the same therapy "
        "line. Real replicate variability is larger than counting noise, so this is a "
        "prompt for review, not an alert on its own."
    ),
    rules.FlagCode.NON_STANDARD_VOLUME: (
        "The blood volume was not 7.5 mL. The count is scaled to 7.5 mL and its category "
        "is indicative only."
    ),
    rules.FlagCode.DOXORUBICIN_WINDOW: (
        "Drawn 1 to 6 days after a doxorubicin dose (a draw on the dose day is taken to be "
        "before the dose): interpret with caution. Lab guidance is to wait at least 7 days."
    ),
    rules.FlagCode.MISSING_PRE_CYCLE_DRAW: (
        "An upcoming cycle has no evaluable draw in its pre-cycle window, the {window} days "
        "before day 1 up to a pre-dose draw on day 1."
    ),
    rules.FlagCode.NOT_EVALUABLE: (
        "The draw was rejected (pre-analytic) or failed (analytic): there is no count, "
        "which is never read as a zero, and a repeat draw is needed. On a cycle: such a "
        "draw lies in its pre-cycle window."
    ),
    rules.FlagCode.NO_CUTOFF: (
        "No cut-off is set for this cancer type, so the count cannot be classified as "
        "favourable or unfavourable."
    ),
}

RECIST_TERMS: dict[str, str] = {
    "CR": "CR (complete response)",
    "PR": "PR (partial response)",
    "SD": "SD (stable disease)",
    "PD": "PD (progressive disease)",
    "NE": "NE (not evaluable)",
}


# --- the entry point ----------------------------------------------------------


def report_pdf(data: ReportData) -> bytes:
    """The whole report as PDF bytes: same data, same bytes."""
    _check_aware(data.generated_at, "generated_at")
    doc = _Document(data)
    _first_page(doc)
    _draws_section(doc)
    _cycles_section(doc)
    _imaging_section(doc)
    _how_to_read_section(doc)
    for number, page in enumerate(doc.pages, start=1):
        _header_and_footer(page, data, number, len(doc.pages))
    return pdf_bytes(doc.pages, title="CTC report", rc_lock=charts.RC_LOCK)


def _check_aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be time-zone aware")


class _Document(Document):
    """The report's pages, with the data they show and the clinic's time zone."""

    def __init__(self, data: ReportData) -> None:
        super().__init__()
        self.data = data
        self.zone = ZoneInfo(data.time_zone)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)


# --- page 1 ---------------------------------------------------------------------


def _first_page(doc: _Document) -> None:
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


def _patient_rows(doc: _Document) -> list[LaidOutRow]:
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


def _chart_page_figure(chart: charts.ChartData, *, top: float) -> Figure:
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

    The chart's key of flag words ("Flags:   a = ...   b = ...") is one line,
    sized for a 9-inch screen chart; on the page it would run into the margins.
    """
    for legend in fig.legends:
        title = legend.get_title()
        size = title.get_fontsize()
        parts = title.get_text().split("   ")
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


def _summary(doc: _Document) -> None:
    heading(doc, "Summary", keep_with=40)
    for lead, text in _summary_sentences(doc.data):
        paragraph(doc, text, lead=lead)


def _summary_sentences(data: ReportData) -> list[tuple[str, str]]:
    """(bold lead, text) pairs: the latest count, the draws, the latest flags, upcoming cycles."""
    if not data.assessments and not data.voided:
        sentences = [("", NO_DRAWS_TEXT)]
    else:
        sentences = [("Latest evaluable count: ", _latest_text(data)), _draw_counts(data)]
    latest = data.assessments[-1] if data.assessments else None
    if latest is not None and latest.flags:
        messages = "; ".join(flag.message for flag in latest.flags)
        latest_on = wording.date_text(latest.draw.drawn_on)
        sentences.append((f"Flags on the latest draw ({latest_on}): ", messages + "."))
    upcoming = _upcoming_cycles(data)
    sentences += [_upcoming(*item) for item in upcoming[:UPCOMING_IN_SUMMARY]]
    if len(upcoming) > UPCOMING_IN_SUMMARY:
        more = len(upcoming) - UPCOMING_IN_SUMMARY
        sentences.append(("", f"{more} more upcoming cycles are in the cycles table."))
    return sentences


UPCOMING_IN_SUMMARY = 3


def _upcoming_cycles(
    data: ReportData,
) -> list[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment]]:
    """Planned and delayed cycles with their assessment, soonest first."""
    upcoming = [
        (line, cycle, assessment)
        for line, cycle, assessment in data.cycles
        if assessment is not None and _is_upcoming(cycle)
    ]
    return sorted(upcoming, key=lambda item: (item[1].scheduled_date, item[0].line_number))


def _is_upcoming(cycle: rules.CycleIn) -> bool:
    return cycle.status in rules.UPCOMING_CYCLE_STATUSES


def _latest_text(data: ReportData) -> str:
    evaluable = [a for a in data.assessments if a.evaluable]
    if not evaluable:
        return "none yet."
    latest = evaluable[-1]
    category = latest.category.value if latest.category else "not classified (no cut-off)"
    interval = f"; 95% interval {wording.interval_text(latest.ci95)}" if latest.ci95 else ""
    rate = wording.count_phrase(_rate(latest))
    return f"{rate} on {wording.date_text(latest.draw.drawn_on)}, {category}{interval}."


def _draw_counts(data: ReportData) -> tuple[str, str]:
    evaluable = sum(a.evaluable for a in data.assessments)
    text = f"{len(data.assessments)} recorded, {evaluable} evaluable"
    if data.voided:
        text += f"; {len(data.voided)} entered in error (listed, not assessed)"
    return ("Draws: ", text + ".")


def _upcoming(
    line: rules.LineIn, cycle: rules.CycleIn, assessment: rules.CycleAssessment
) -> tuple[str, str]:
    flags = ", ".join(FLAG_WORDS.get(f.code, f.code) for f in assessment.flags) or "no flags"
    lead = f"Upcoming L{line.line_number} C{cycle.number} "
    return (lead, f"(day 1 {wording.date_text(cycle.scheduled_date)}, {cycle.status}): {flags}.")


# --- the draws table ----------------------------------------------------------

# "Result" is the count in its blood volume, or the status of a draw without one
# (rejected, failed, pending, cancelled): one column, so the flags have room.
DRAW_COLUMNS = (
    Column("Drawn (local)", 80),
    Column("Accession", 62),
    Column("Result", 62),
    Column("Per 7.5 mL", 44),
    Column("95% interval", 54),
    Column("Category", 62),
    Column("Flags and notes", WIDTH - 364),
)


def _draws_section(doc: _Document) -> None:
    if len(doc.pages) == 1:  # the chart page; a summary that ran over has started page 2
        doc.new_page()
    rows = _draw_rows(doc)
    if not rows:
        heading(doc, "CTC draws")
        paragraph(doc, NO_DRAWS_TEXT)
        return
    table(doc, "CTC draws (oldest first)", DRAW_COLUMNS, rows)


def _draw_rows(doc: _Document) -> list[list[Cell]]:
    entries: list[tuple[datetime, rules.DrawAssessment | VoidedDraw]] = [
        (a.draw.drawn_at, a) for a in doc.data.assessments
    ]
    entries += [(v.drawn_at, v) for v in doc.data.voided]
    # sorted() is stable: assessed draws keep the rules' order at equal times.
    entries.sort(key=lambda entry: entry[0])
    return [
        _voided_row(doc, e) if isinstance(e, VoidedDraw) else _assessed_row(doc, e)
        for _, e in entries
    ]


def _assessed_row(doc: _Document, a: rules.DrawAssessment) -> list[Cell]:
    draw = a.draw
    return [
        text_cell(_local_time_text(doc, draw.drawn_at)),
        text_cell(_accession_text(doc, draw.id)),
        text_cell(_result_text(draw)),
        text_cell(_rate_text(a)),
        text_cell(wording.interval_text(a.ci95, joiner="–") if a.ci95 else DASH),
        text_cell(_category_text(a)),
        _flags_cell(a.flags, _note_for(doc, draw.id)),
    ]


def _result_text(draw: rules.DrawIn) -> str:
    if draw.status != rules.DrawStatus.RESULTED or draw.ctc_count is None:
        return draw.status
    return wording.count_in_volume(draw.ctc_count, draw.blood_volume_ml)


def _accession_text(doc: _Document, draw_id: int | None) -> str:
    accession = doc.data.accessions.get(draw_id, "") if draw_id is not None else ""
    return accession or DASH


def _note_for(doc: _Document, draw_id: int | None) -> str:
    return _clipped(doc.data.comments.get(draw_id, "")) if draw_id is not None else ""


def _voided_row(doc: _Document, v: VoidedDraw) -> list[Cell]:
    result = f"{v.ctc_count:,} cells" if v.ctc_count is not None else v.status
    return [
        text_cell(_local_time_text(doc, v.drawn_at), CELL_VOID),
        text_cell(""),
        text_cell(result, CELL_VOID),
        text_cell(DASH),
        text_cell(DASH),
        text_cell(DASH),
        text_cell(f"ENTERED IN ERROR: {_clipped(v.error_reason) or 'no reason given'}", CELL_ERROR),
    ]


def _clipped(text: str, limit: int = NOTE_LIMIT) -> str:
    """Free text cut to `limit` characters, so that one table row never outgrows a page."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "… (see the record)"


def _local_time_text(doc: _Document, moment: datetime) -> str:
    _check_aware(moment, "drawn_at")
    return wording.time_text(doc.local(moment))


def _rate(a: rules.DrawAssessment) -> float:
    assert a.rate_per_7_5_ml is not None  # only evaluable draws get here
    return a.rate_per_7_5_ml


def _rate_text(a: rules.DrawAssessment) -> str:
    if not a.evaluable:
        return DASH
    return wording.short_rate(_rate(a))


def _category_text(a: rules.DrawAssessment) -> str:
    if a.category is not None:
        return a.category.value
    return "not classified" if a.evaluable else DASH


def _flags_cell(flags: Sequence[rules.Flag], comment: str = "") -> Cell:
    """Flag words on one flowing line, high severity in bold red; a comment below."""
    words = [(FLAG_WORDS.get(f.code, f.code), _flag_style(f)) for f in flags]
    para = tuple(
        (f"{word}," if index + 1 < len(words) else word, style)
        for index, (word, style) in enumerate(words)
    )
    cell: Cell = (para,) if para else ()
    if comment:
        cell += ((("Note: " + comment, CELL_NOTE),),)
    return cell or text_cell("")


def _flag_style(flag: rules.Flag) -> Style:
    return CELL_HIGH if flag.severity is rules.Severity.HIGH else CELL


# --- cycles and imaging -------------------------------------------------------

CYCLE_COLUMNS = (
    Column("Therapy line", 132),
    Column("Cycle", 36),
    Column("Day 1", 58),
    Column("Given", 58),
    Column("Status", 100),
    Column("Before the cycle (upcoming only)", WIDTH - 384),
)


def _cycles_section(doc: _Document) -> None:
    if not doc.data.cycles:
        heading(doc, "Treatment cycles", keep_with=20)
        paragraph(doc, "No treatment cycles recorded.")
        return
    ordered = sorted(
        doc.data.cycles, key=lambda item: (item[0].line_number, item[1].number, item[1].id)
    )
    rows = [_cycle_row(doc, *item) for item in ordered]
    table(doc, "Treatment cycles", CYCLE_COLUMNS, rows)


def _cycle_row(
    doc: _Document,
    line: rules.LineIn,
    cycle: rules.CycleIn,
    assessment: rules.CycleAssessment | None,
) -> list[Cell]:
    regimen = f"L{line.line_number} {line.regimen}".strip()
    line_cell = text_cell(regimen)
    if line.contains_doxorubicin:
        line_cell += ((("contains doxorubicin", CELL_NOTE),),)
    return [
        line_cell,
        text_cell(f"C{cycle.number}"),
        text_cell(wording.date_text(cycle.scheduled_date)),
        text_cell(wording.date_text(cycle.given_date) if cycle.given_date else DASH),
        text_cell(_cycle_status_text(doc, cycle)),
        _cycle_flags_cell(assessment if _is_upcoming(cycle) else None),
    ]


def _cycle_status_text(doc: _Document, cycle: rules.CycleIn) -> str:
    reason = _clipped(doc.data.cycle_reasons.get(cycle.id, ""))
    if reason and cycle.status in (rules.CycleStatus.DELAYED, rules.CycleStatus.CANCELLED):
        return f"{cycle.status}: {reason}"
    return cycle.status


def _cycle_flags_cell(assessment: rules.CycleAssessment | None) -> Cell:
    if assessment is None:
        return text_cell(DASH)
    cell = _flags_cell(assessment.flags) if assessment.flags else text_cell("no flags")
    if assessment.draw is not None:
        drawn_on = wording.date_text(assessment.draw.draw.drawn_on)
        cell += (((f"from the draw of {drawn_on}", CELL_NOTE),),)
    return cell


IMAGING_COLUMNS = (
    Column("Date", 80),
    Column("Modality", 120),
    Column("RECIST 1.1 response", 120),
)


def _imaging_section(doc: _Document) -> None:
    points = sorted(doc.data.imaging, key=lambda p: p.performed_on)
    if not points:
        heading(doc, "Imaging", keep_with=20)
        paragraph(doc, "No imaging recorded.")
        return
    rows = [
        [text_cell(wording.date_text(p.performed_on)), text_cell(p.modality), text_cell(p.response)]
        for p in points
    ]
    table(doc, "Imaging", IMAGING_COLUMNS, rows)
    codes = [code for code in RECIST_TERMS if any(p.response == code for p in points)]
    legend = "RECIST 1.1 codes: " + "; ".join(RECIST_TERMS[code] for code in codes) + "."
    paragraph(doc, legend, Style(size=SMALL_PT, colour=MUTED_COLOUR))


# --- how to read this report ----------------------------------------------------


def _how_to_read_section(doc: _Document) -> None:
    heading(doc, "How to read this report")
    for lead, text in _reading_paragraphs(doc.data):
        paragraph(doc, text, lead=lead)
    codes = _flag_codes_shown(doc.data)
    if codes:
        rows = [_flag_row(code, doc.data) for code in codes]
        columns = (Column("Flag", 150), Column("Meaning", WIDTH - 150))
        table(doc, "Flags in this report", columns, rows)


def _flag_row(code: str, data: ReportData) -> list[Cell]:
    severity = rules.FLAG_SEVERITY[rules.FlagCode(code)].value
    name: Cell = (
        ((FLAG_WORDS.get(code, code), CELL_BOLD),),
        ((f"{code} ({severity})", CELL_NOTE),),
    )
    return [name, text_cell(flag_explanation(code, data))]


def flag_explanation(code: str, data: ReportData) -> str:
    """The paragraph that explains a flag code to a clinician reading this patient's report."""
    return FLAG_EXPLANATIONS[code].format(window=data.pre_cycle_window_days, cutoff=data.cutoff)


def _reading_paragraphs(data: ReportData) -> list[tuple[str, str]]:
    paragraphs = [
        ("Cut-off: ", _cutoff_explanation(data)),
        ("95% interval: ", _INTERVAL_EXPLANATION),
        ("The count: ", _COUNT_EXPLANATION),
    ]
    if data.voided:
        paragraphs.append(("Entered in error: ", _VOIDED_EXPLANATION))
    if _flag_codes_shown(data):
        paragraphs.append(("Flags: ", _FLAGS_EXPLANATION))
    return paragraphs


def _cutoff_explanation(data: ReportData) -> str:
    if data.cutoff is None:
        kind = data.cancer_type or "this patient's cancer type"
        return (
            f"no cut-off is set for {kind}, so counts are shown but cannot be classified "
            "as favourable or unfavourable."
        )
    return (
        f"for {data.cancer_type} cancer, {data.cutoff} or more CTC per 7.5 mL is unfavourable "
        f"and fewer than {data.cutoff} is favourable. The cut-off is inclusive: exactly "
        f"{data.cutoff} is unfavourable. A count from a blood volume other than 7.5 mL is "
        "scaled to 7.5 mL. A rejected or failed draw has no count; it is never a zero."
    )


_INTERVAL_EXPLANATION = (
    "the exact (Garwood) Poisson interval of the count, scaled to 7.5 mL: the "
    "range of true values consistent with the cells counted (0 cells gives 0 to 3.69; 5 "
    "cells give 1.62 to 11.67). Near the cut-off a single draw cannot tell 4 from 6: a true "
    "mean of 4 reads 5 or more in 37% of draws."
)

_COUNT_EXPLANATION = (
    "CTC counts are prognostic. They supplement imaging (CT, PET, bone scan) and never "
    "replace it; imaging dates and RECIST responses are shown on the chart and in the "
    "imaging table."
)


_VOIDED_EXPLANATION = (
    "such draws are listed struck through with the reason; they are never assessed and "
    "never compared with other draws."
)

_FLAGS_EXPLANATION = (
    "they prompt review by the treating oncologist; they never recommend a treatment. Each flag "
    "shown in this report is explained below."
)


def _flag_codes_shown(data: ReportData) -> list[str]:
    """Every flag code that appears on a draw or a cycle, in the specification's order."""
    shown = {flag.code for a in data.assessments for flag in a.flags}
    shown |= {flag.code for _, _, c in _upcoming_cycles(data) for flag in c.flags}
    return [code for code in rules.FlagCode if code in shown]


# --- running header and footer ------------------------------------------------


def _running_header(page: Page, data: ReportData) -> None:
    """Name, MRN and date of birth on one line, or on two smaller ones for a long name."""
    top = MARGIN + SMALL_PT + 1
    born = wording.date_text(data.birth_date)
    identity = f"{data.patient_name}   ·   MRN {data.mrn}   ·   born {born}"
    label = Style(size=SMALL_PT, colour=MUTED_COLOUR)
    if width_of(identity, BOLD) + width_of("CTC report", label) + 20 < WIDTH:
        page.text(LEFT, top, identity, BOLD)
        page.text(RIGHT, top, "CTC report", label, ha="right")
    else:
        small = replace(BOLD, size=SMALL_PT)
        # The full name is in the patient block; here it must not run off the page.
        lines = wrap(((data.patient_name, small),), WIDTH - 12)
        name = lines[0][0][0] + (" …" if len(lines) > 1 else "")
        page.text(LEFT, top - 2, name, small)
        page.text(LEFT, top + 8, f"MRN {data.mrn}   ·   born {born}", small)
        top += 8
    page.rule(LEFT, RIGHT, top + 5, colour=RULE_COLOUR)


def _header_and_footer(page: Page, data: ReportData, number: int, total: int) -> None:
    _running_header(page, data)

    generated = data.generated_at.astimezone(ZoneInfo(data.time_zone))
    bottom = PAGE_H - MARGIN
    page.rule(LEFT, RIGHT, bottom - 21, colour=RULE_COLOUR)
    line = (
        f"Generated {wording.time_text(generated)} ({data.time_zone}) by {data.generated_by}"
        f" · page {number} of {total}"
    )
    page.text(LEFT, bottom - 11, line, FOOTER)
    page.text(LEFT, bottom, "CTC counts supplement imaging; they never replace it.", FOOTER)
