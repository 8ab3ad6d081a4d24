"""The CTC report's tables: the draws, the treatment cycles and the imaging.

One row per result (a sample with its tubes pooled, a tube that is not part of
one; a draw entered in error struck through, never assessed), per cycle (with
its pre-cycle window, state, flags and acknowledgement) and per scan. Free text
is clipped so that one row never outgrows a page.
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
    NO_DRAWS_TEXT,
    Acknowledged,
    ReportDocument,
    Result,
    VoidedDraw,
    check_aware,
    cycle_state_text,
    flag_text,
    is_evaluated,
    rate_of,
    results,
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

# One row per result: a sample (its tubes pooled), or a tube that is not part of
# one. "Result" is each tube's count in its blood volume, or the status of a tube
# without one (rejected, failed, pending, cancelled): one column, so the flags
# have room. The rate, interval, category and flags are the sample's.
DRAW_COLUMNS = (
    Column("Drawn (local)", 86),  # "28 May 2026 09:30" on one line
    Column("Accession", 62),
    Column("Result", 62),
    Column("Per 7.5 mL", 44),
    Column("95% interval", 54),
    Column("Category", 62),
    Column("Flags and notes", WIDTH - 370),
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
    entries: list[tuple[datetime, Result | VoidedDraw]] = [
        (r.stands_for.draw.drawn_at, r) for r in results(doc.data.assessments)
    ]
    entries += [(v.drawn_at, v) for v in doc.data.voided]
    # sorted() is stable: results keep their order at equal times.
    entries.sort(key=lambda entry: entry[0])
    return [
        _voided_row(doc, e) if isinstance(e, VoidedDraw) else _result_row(doc, e)
        for _, e in entries
    ]


def _result_row(doc: ReportDocument, result: Result) -> list[Cell]:
    a = result.stands_for
    tubes = [t.draw for t in result.tubes]
    return [
        text_cell(_local_time_text(doc, a.draw.drawn_at)),
        _lines_cell([_accession_text(doc, t.id) for t in tubes]),
        _result_cell(tubes),
        text_cell(_rate_text(a)),
        text_cell(wording.interval_text(a.ci95) if a.ci95 else DASH),
        text_cell(_category_text(a)),
        _notes_cell(doc, result),
    ]


def _lines_cell(lines: Sequence[str]) -> Cell:
    return tuple(((line, CELL),) for line in lines)


def _result_cell(tubes: Sequence[rules.DrawIn]) -> Cell:
    cell = _lines_cell([_tube_result_text(t) for t in tubes])
    if len(tubes) > 1:
        cell += (((f"{len(tubes)} tubes pooled", CELL_NOTE),),)
    return cell


def _tube_result_text(draw: rules.DrawIn) -> str:
    if draw.status != rules.DrawStatus.RESULTED or draw.ctc_count is None:
        return draw.status
    return wording.count_in_volume(
        draw.ctc_count,
        draw.blood_volume_ml,
        censored=draw.count_qualifier == rules.Qualifier.MORE_THAN,
    )


def _accession_text(doc: ReportDocument, draw_id: int | None) -> str:
    accession = doc.data.accessions.get(draw_id, "") if draw_id is not None else ""
    return accession or DASH


def _note_for(doc: ReportDocument, draw_id: int | None) -> str:
    return clipped(doc.data.comments.get(draw_id, "")) if draw_id is not None else ""


def _notes_cell(doc: ReportDocument, result: Result) -> Cell:
    """The result's flags with their severities, then what a reader needs beside them:
    the near-the-cut-off chance, the tube's sample, the acknowledgement, the comments."""
    a = result.stands_for
    notes = []
    p = a.p_at_or_above_cutoff
    if a.evaluable and rules.chance_shown(p):
        assert p is not None  # chance_shown said so
        notes.append(rules.chance_text(p))
    if result.beside is not None:
        notes.append(f"with the sample of {_local_clock_text(doc, result.beside.draw.drawn_at)}")
    if a.needs_review:
        draw_id = a.draw.id
        acknowledged = doc.data.result_acknowledged.get(draw_id) if draw_id is not None else None
        notes.append(_acknowledged_text(doc, acknowledged))
    comments = [_note_for(doc, t.draw.id) for t in result.tubes]
    notes += [f"Note: {comment}" for comment in comments if comment]
    return _flags_cell(result.flags, notes)


def _acknowledged_text(doc: ReportDocument, acknowledged: Acknowledged | None) -> str:
    if acknowledged is None:
        return "not acknowledged"
    check_aware(acknowledged.at, "acknowledged at")
    when = wording.time_text(doc.local(acknowledged.at))
    return f"acknowledged by {clipped(acknowledged.by, 80)} on {when}"


def _voided_row(doc: ReportDocument, v: VoidedDraw) -> list[Cell]:
    result = f"{v.ctc_count:,} cells" if v.ctc_count is not None else v.status
    return [
        text_cell(_local_time_text(doc, v.drawn_at), CELL_VOID),
        text_cell(""),
        text_cell(result, CELL_VOID),
        text_cell(DASH),
        text_cell(DASH),
        text_cell(DASH),
        text_cell(f"ENTERED IN ERROR: {clipped(v.error_reason) or 'no reason given'}", CELL_ERROR),
    ]


def clipped(text: str, limit: int = NOTE_LIMIT) -> str:
    """Free text cut to `limit` characters, so that one table row never outgrows a page."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "… (see the record)"


def _local_time_text(doc: ReportDocument, moment: datetime) -> str:
    check_aware(moment, "drawn_at")
    return wording.time_text(doc.local(moment))


def _local_clock_text(doc: ReportDocument, moment: datetime) -> str:
    """The time of day only, "09:30": for a tube beside a sample, drawn on the same day."""
    return doc.local(moment).strftime("%H:%M")


def _rate_text(a: rules.DrawAssessment) -> str:
    if not a.evaluable:
        return DASH
    return wording.short_rate(rate_of(a), censored=a.censored)


def _category_text(a: rules.DrawAssessment) -> str:
    if a.category is not None:
        return a.category.value
    return "not classified" if a.evaluable else DASH


def _flags_cell(flags: Sequence[rules.Flag], notes: Sequence[str] = ()) -> Cell:
    """Flags with their severities on one flowing line, high in bold red; notes below."""
    words = [(flag_text(f), _flag_style(f)) for f in flags]
    para = tuple(
        (f"{word}," if index + 1 < len(words) else word, style)
        for index, (word, style) in enumerate(words)
    )
    cell: Cell = (para,) if para else ()
    cell += tuple(((note, CELL_NOTE),) for note in notes)
    return cell or text_cell("")


def _flag_style(flag: rules.Flag) -> Style:
    return CELL_HIGH if flag.severity is rules.Severity.HIGH else CELL


# --- cycles and imaging -------------------------------------------------------

CYCLE_COLUMNS = (
    Column("Therapy line", 96),
    Column("Cycle", 32),
    Column("Day 1", 80),  # "Wed 28 May 2026" on one line
    Column("Given", 80),
    Column("Status", 76),
    Column("Before the cycle", WIDTH - 364),
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
    before = (
        _before_cycle_cell(doc, assessment)
        if assessment is not None and is_evaluated(cycle)
        else text_cell(DASH)
    )
    return [
        line_cell,
        text_cell(f"C{cycle.number}"),
        text_cell(wording.date_text(cycle.scheduled_date)),
        text_cell(wording.date_text(cycle.given_date) if cycle.given_date else DASH),
        text_cell(_cycle_status_text(doc, cycle)),
        before,
    ]


def _cycle_status_text(doc: ReportDocument, cycle: rules.CycleIn) -> str:
    reason = clipped(doc.data.cycle_reasons.get(cycle.id, ""))
    if reason and cycle.status in (rules.CycleStatus.DELAYED, rules.CycleStatus.CANCELLED):
        return f"{cycle.status}: {reason}"
    return cycle.status


def _before_cycle_cell(doc: ReportDocument, assessment: rules.CycleAssessment) -> Cell:
    """The cycle's state in words, its flags, the sample they come from, its pre-cycle
    window and, when a flag needs review, whether it was acknowledged."""
    state = cycle_state_text(assessment, doc.data.assessments)
    if not state and not assessment.flags:
        state = "no flags"  # a result in the window, with none
    opens, day_1 = assessment.window
    window = f"window {wording.date_text(opens)} to {wording.date_text(day_1)}"
    if assessment.draw is not None:
        sample = wording.date_text(assessment.draw.draw.drawn_on)
        window = f"from the sample of {sample}; {window}"
    notes = [window]
    if assessment.needs_review:
        acknowledged = doc.data.cycle_acknowledged.get(assessment.cycle.id)
        notes.append(_acknowledged_text(doc, acknowledged))
    lead: Cell = text_cell(state) if state else ()
    return lead + _flags_cell(assessment.flags, notes)


IMAGING_COLUMNS = (
    Column("Date", 80),  # "Wed 28 May 2026" on one line
    Column("Modality", 72),
    Column("RECIST 1.1 response", 110),
    Column("Note", WIDTH - 262),
)
# An imaging table up to this tall (about 15 rows) is never split across pages.
IMAGING_KEEP_WHOLE_PT = 260


def imaging_section(doc: ReportDocument) -> None:
    points = sorted(doc.data.imaging, key=lambda p: p.performed_on)
    if not points:
        heading(doc, "Imaging", keep_with=20)
        paragraph(doc, "No imaging recorded.")
        return
    rows = [
        [
            text_cell(wording.date_text(p.performed_on)),
            text_cell(p.modality),
            text_cell(p.response),
            text_cell(clipped(p.note) if p.note else DASH),
        ]
        for p in points
    ]
    table(doc, "Imaging", IMAGING_COLUMNS, rows, keep_whole_below=IMAGING_KEEP_WHOLE_PT)
    codes = [code for code in RECIST_TERMS if any(p.response == code for p in points)]
    legend = "RECIST 1.1 codes: " + "; ".join(RECIST_TERMS[code] for code in codes) + "."
    paragraph(doc, legend, Style(size=SMALL_PT, colour=MUTED_COLOUR))
