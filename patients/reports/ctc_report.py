"""The printable CTC report: what goes on it, for tumour boards and the paper chart.

Plain data in, PDF bytes out: no Django, no database, no clock (the caller
passes `generated_at`). Every category and flag shown comes from
patients.rules, every value is worded by patients.wording, and the trend chart
is patients.reports.charts' own figure, so the report cannot disagree with the
screens. The pages, text flow and tables are patients.reports.layout's.

`report_pdf` is the entry point and `ReportData` its input. This module puts
the sections in order and holds the guide to reading the report and the
running header and footer; page 1 is report_summary's, the tables are
report_tables', and the inputs and shared pieces report_data's.
"""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from patients import rules, wording
from patients.reports import charts
from patients.reports.layout import (
    BOLD,
    CELL_BOLD,
    FOOTER,
    LEFT,
    MARGIN,
    MUTED_COLOUR,
    PAGE_H,
    RIGHT,
    RULE_COLOUR,
    SMALL_PT,
    WIDTH,
    Cell,
    Column,
    Page,
    Style,
    heading,
    paragraph,
    pdf_bytes,
    table,
    text_cell,
    width_of,
    wrap,
)
from patients.reports.report_data import (
    CELL_NOTE,
    FLAG_SEVERITIES,
    FLAG_WORDS,
    ReportData,
    ReportDocument,
    check_aware,
    evaluated_cycles,
    results,
)
from patients.reports.report_summary import first_page
from patients.reports.report_tables import cycles_section, draws_section, imaging_section

# One short paragraph per flag, from the meaning in docs/clinical-rules.md.
# "{window}" is the pre-cycle window in days, "{cutoff}" the patient's cut-off.
FLAG_EXPLANATIONS: dict[str, str] = {
    rules.FlagCode.BASELINE_UNFAVOURABLE: (
        "The patient's first evaluable sample is at or above the cut-off for this cancer "
        "type ({cutoff} or more CTC per 7.5 mL)."
    ),
    rules.FlagCode.CONVERSION_TO_UNFAVOURABLE: (
        "The previous evaluable sample was favourable and this one is unfavourable. High "
        "when the sample is clearly above the cut-off; review when it is near it (the chance "
        "that the true count is at or above the cut-off is below {clear}%), where a repeat "
        "draw would settle it."
    ),
    rules.FlagCode.PERSISTENT_UNFAVOURABLE: (
        "The previous evaluable sample was unfavourable and this one is unfavourable again. "
        "High when clearly above the cut-off, review when near it."
    ),
    rules.FlagCode.CONVERSION_TO_FAVOURABLE: (
        "The previous evaluable sample was unfavourable and this one is favourable."
    ),
    rules.FlagCode.RISE_BEYOND_NOISE: (
        "The count per 7.5 mL at least doubled and the exact test for two Poisson counts finds "
        "the rise larger than counting noise: one-sided p < 0.05 against the previous "
        "evaluable sample, or p < 0.01 against the lowest earlier count of the same therapy "
        "line (never on a count lower than the previous one). It prompts review; it is not an "
        "alert on its own."
    ),
    rules.FlagCode.NON_STANDARD_VOLUME: (
        "A tube's blood volume was not 7.5 mL. The count is scaled to 7.5 mL."
    ),
    rules.FlagCode.DOXORUBICIN_WINDOW: (
        "Drawn 1 to 6 days after a doxorubicin dose (a draw on the dose day is taken to be "
        "before the dose): doxorubicin can make the count falsely high, so a high flag of "
        "this sample is lowered to review. Lab guidance is to draw at least 7 days after."
    ),
    rules.FlagCode.MISSING_PRE_CYCLE_DRAW: (
        "Day 1 has passed with no evaluable sample in the cycle's pre-cycle window, the "
        "{window} days before day 1 (as first planned) up to a pre-dose draw on day 1."
    ),
    rules.FlagCode.DISCORDANT_IN_WINDOW: (
        "Two evaluable samples in the cycle's pre-cycle window fall on different sides of "
        "the cut-off."
    ),
    rules.FlagCode.NOT_EVALUABLE: (
        "The tube was rejected (pre-analytic) or failed (analytic) with no evaluable tube "
        "drawn with it: there is no count, which is never read as a zero, and a repeat draw "
        "is needed. On a cycle: such a tube lies in its pre-cycle window."
    ),
    rules.FlagCode.NO_CUTOFF: (
        "No cut-off is set for this cancer type, so the count cannot be classified as "
        "favourable or unfavourable."
    ),
}


# --- the entry point ----------------------------------------------------------


def report_pdf(data: ReportData) -> bytes:
    """The whole report as PDF bytes: same data, same bytes."""
    check_aware(data.generated_at, "generated_at")
    doc = ReportDocument(data)
    first_page(doc)
    draws_section(doc)
    cycles_section(doc)
    imaging_section(doc)
    _how_to_read_section(doc)
    for number, page in enumerate(doc.pages, start=1):
        _header_and_footer(page, data, number, len(doc.pages))
    return pdf_bytes(doc.pages, title="CTC report", rc_lock=charts.RC_LOCK)


# --- how to read this report ----------------------------------------------------


def _how_to_read_section(doc: ReportDocument) -> None:
    heading(doc, "How to read this report")
    for lead, text in _reading_paragraphs(doc.data):
        paragraph(doc, text, lead=lead)
    codes = _flag_codes_shown(doc.data)
    if codes:
        rows = [_flag_row(code, doc.data) for code in codes]
        columns = (Column("Flag", 150), Column("Meaning", WIDTH - 150))
        table(doc, "Flags in this report", columns, rows)


def _flag_row(code: str, data: ReportData) -> list[Cell]:
    name: Cell = (
        ((FLAG_WORDS.get(code, code), CELL_BOLD),),
        ((f"{code} ({FLAG_SEVERITIES[code]})", CELL_NOTE),),
    )
    return [name, text_cell(flag_explanation(code, data))]


def flag_explanation(code: str, data: ReportData) -> str:
    """The paragraph that explains a flag code to a clinician reading this patient's report."""
    return FLAG_EXPLANATIONS[code].format(
        window=data.pre_cycle_window_days,
        cutoff=data.cutoff,
        clear=round(data.clear_probability * 100),
    )


def _reading_paragraphs(data: ReportData) -> list[tuple[str, str]]:
    paragraphs = [
        ("Cut-off: ", _cutoff_explanation(data)),
        ("Samples: ", _SAMPLES_EXPLANATION),
        ("95% interval: ", _INTERVAL_EXPLANATION),
    ]
    evaluable = [a for a in data.assessments if a.evaluable]
    if any(rules.chance_shown(a.p_at_or_above_cutoff) for a in evaluable):
        paragraphs.append(("The chance: ", _CHANCE_EXPLANATION))
    if any(a.censored for a in evaluable):
        paragraphs.append(("More than a number: ", _LOWER_BOUND_EXPLANATION))
    paragraphs.append(("The count: ", _COUNT_EXPLANATION))
    if data.voided:
        paragraphs.append(("Entered in error: ", _VOIDED_EXPLANATION))
    if _flag_codes_shown(data):
        paragraphs.append(("Flags: ", _FLAGS_EXPLANATION))
        clear = round(data.clear_probability * 100)
        paragraphs.append(("Severity: ", _SEVERITY_EXPLANATION.format(clear=clear)))
    paragraphs.append(("Before each cycle: ", _cycles_explanation(data)))
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
    "range of true values consistent with the cells counted (0 cells gives 0.0 to 3.7; "
    "5 cells give 1.6 to 11.7; printed with one decimal, rounded outward). Near the "
    "cut-off a single draw cannot tell 4 from 6: a true mean of 4 reads 5 or more in "
    "37% of draws."
)

_SAMPLES_EXPLANATION = (
    "tubes drawn at the same moment (one venepuncture) are one sample: their counts and "
    "volumes are added, and the rate, interval, category and flags are the sample's. A "
    "rejected or failed tube drawn with an evaluable sample is listed with the sample's time "
    "and has no flag of its own."
)

_CHANCE_EXPLANATION = (
    "near the cut-off, the chance that the patient's true count is at or above the cut-off, "
    "given the cells counted, is shown when it lies between 5% and 95% (a Poisson count with a "
    "Jeffreys prior)."
)

_LOWER_BOUND_EXPLANATION = (
    'a count reported as more than a number ("> 1000") is a lower bound: the sample is '
    "unfavourable, its interval has a lower limit only, and on the chart it is an arrow "
    "pointing up from the bound."
)

_SEVERITY_EXPLANATION = (
    "high when a sample is clearly on its side of the cut-off (the chance is at least "
    "{clear}%); review when it is near the cut-off, where a repeat draw would settle it, or "
    "when a high flag is lowered because the sample was drawn within 6 days of a doxorubicin "
    "dose; info for what is worth knowing but needs no review. A result with a high or review "
    "flag needs review until a nurse or an oncologist acknowledges it."
)


def _cycles_explanation(data: ReportData) -> str:
    return (
        f"a cycle's pre-cycle window is the {data.pre_cycle_window_days} days before day 1 (as "
        "first planned: a delay keeps a draw taken for the original date) up to a pre-dose "
        "draw on day 1. A cycle shows the flags of the latest evaluable sample in its window. "
        "Before its window opens, a cycle has no flag; while it is open, a draw is due; once "
        "day 1 has passed with no evaluable sample, the draw is missing."
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
    """Every flag code that appears on a result or a cycle, in the specification's order."""
    shown = {flag.code for r in results(data.assessments) for flag in r.flags}
    shown |= {flag.code for _, _, c in evaluated_cycles(data) for flag in c.flags}
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
        # An empty name wraps to a line without runs.
        first = lines[0][0][0] if lines and lines[0] else ""
        name = first + (" …" if len(lines) > 1 else "")
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
