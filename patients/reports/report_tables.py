"""The CTC report's tables: the draws, the treatment cycles and the imaging.

One row per draw (a draw entered in error struck through, never assessed), per
cycle and per scan. Free text is clipped so that one row never outgrows a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from patients import rules, wording
from patients.reports.layout import (
    CELL,
    MUTED_COLOUR,
    SMALL_PT,
    WIDTH,
    Cell,
    Column,
    Style,
    heading,
    paragraph,
    table,
    text_cell,
)
from patients.reports.report_data import (
    CELL_ERROR,
    CELL_HIGH,
    CELL_NOTE,
    CELL_VOID,
    FLAG_WORDS,
    NO_DRAWS_TEXT,
    ReportDocument,
    VoidedDraw,
    check_aware,
    is_upcoming,
    rate_of,
)

DASH = "—"
NOTE_LIMIT = 400  # characters of a comment or reason shown in a table cell

RECIST_TERMS: dict[str, str] = {
    "CR": "CR (complete response)",
    "PR": "PR (partial response)",
    "SD": "SD (stable disease)",
    "PD": "PD (progressive disease)",
    "NE": "NE (not evaluable)",
}


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


def draws_section(doc: ReportDocument) -> None:
    if len(doc.pages) == 1:  # the chart page; a summary that ran over has started page 2
        doc.new_page()
    rows = _draw_rows(doc)
    if not rows:
        heading(doc, "CTC draws")
        paragraph(doc, NO_DRAWS_TEXT)
        return
    table(doc, "CTC draws (oldest first)", DRAW_COLUMNS, rows)


def _draw_rows(doc: ReportDocument) -> list[list[Cell]]:
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


def _assessed_row(doc: ReportDocument, a: rules.DrawAssessment) -> list[Cell]:
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
    return wording.count_in_volume(
        draw.ctc_count, draw.blood_volume_ml, qualifier=draw.count_qualifier
    )


def _accession_text(doc: ReportDocument, draw_id: int | None) -> str:
    accession = doc.data.accessions.get(draw_id, "") if draw_id is not None else ""
    return accession or DASH


def _note_for(doc: ReportDocument, draw_id: int | None) -> str:
    return _clipped(doc.data.comments.get(draw_id, "")) if draw_id is not None else ""


def _voided_row(doc: ReportDocument, v: VoidedDraw) -> list[Cell]:
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


def _local_time_text(doc: ReportDocument, moment: datetime) -> str:
    check_aware(moment, "drawn_at")
    return wording.time_text(doc.local(moment))


def _rate_text(a: rules.DrawAssessment) -> str:
    if not a.evaluable:
        return DASH
    return wording.short_rate(rate_of(a), qualifier=a.draw.count_qualifier)


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


def cycles_section(doc: ReportDocument) -> None:
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
    doc: ReportDocument,
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
        _cycle_flags_cell(assessment if is_upcoming(cycle) else None),
    ]


def _cycle_status_text(doc: ReportDocument, cycle: rules.CycleIn) -> str:
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


def imaging_section(doc: ReportDocument) -> None:
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
