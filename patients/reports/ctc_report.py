"""The printable CTC report: PDF bytes for tumour boards and the paper chart.

Plain data in, bytes out: no Django, no database, no clock (the caller passes
`generated_at`). Every category and flag shown comes from patients.rules, and
the trend chart is patients.reports.charts' own figure, so the report cannot disagree
with the screens. Pages are matplotlib Figures saved with the PDF backend,
never pyplot (pyplot keeps global state that leaks in a web server).

Layout is done by hand, in points measured from the top-left corner of an A4
page, because matplotlib has no flowing text or tables that split across
pages. Everything stays inside 15 mm margins so the page also prints on US
Letter without being cut.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.textpath import text_to_path
from matplotlib.transforms import Bbox

from patients import rules
from patients.reports import charts


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


# --- page geometry (points; 72 per inch) ------------------------------------

PAGE_W_IN, PAGE_H_IN = 8.27, 11.69  # A4 portrait
PAGE_W, PAGE_H = PAGE_W_IN * 72, PAGE_H_IN * 72
MARGIN = 15 / 25.4 * 72  # 15 mm: A4 content then also fits on US Letter
LEFT, RIGHT = MARGIN, PAGE_W - MARGIN
WIDTH = RIGHT - LEFT
BODY_TOP = MARGIN + 26  # below the running header
BODY_BOTTOM = PAGE_H - MARGIN - 30  # above the two-line footer

FONT_FAMILY = "DejaVu Sans"  # ships with matplotlib, so every server has it
BODY_PT = 9.0
TABLE_PT = 8.0
SMALL_PT = 8.0  # the smallest text in the report
TEXT_COLOUR = "#222222"
MUTED_COLOUR = "#555555"
RULE_COLOUR = "#999999"
STRIPE_COLOUR = "#f2f2f2"
HIGH_COLOUR = charts.UNFAVOURABLE_COLOUR

CELL_PAD_X = 3.0
CELL_PAD_Y = 3.0
LINE_SPACING = 1.25  # line height as a multiple of the font size

# The trend chart on page 1, drawn at this size by charts.trend_figure.
CHART_W_IN = WIDTH / 72
CHART_H_IN = 5.7

# Rendering settings that must not depend on the caller's rcParams: TrueType
# (Type 42) fonts keep the text extractable and searchable; no dates in the file.
_PDF_RC = {"pdf.fonttype": 42, "pdf.compression": 6, "pdf.use14corefonts": False}
_PDF_METADATA = {"Title": "CTC report", "CreationDate": None, "Producer": None}

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
    return _encode(doc.pages)


def _check_aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be time-zone aware")


def _encode(pages: Sequence[_Page]) -> bytes:
    buffer = io.BytesIO()
    # rc_context changes process-wide settings: hold the lock the chart encoders
    # hold, so a concurrent encoder can neither see ours nor restore its own mid-way.
    with (
        charts.RC_LOCK,
        matplotlib.rc_context(_PDF_RC),
        PdfPages(buffer, metadata=_PDF_METADATA) as pdf,
    ):
        for page in pages:
            pdf.savefig(page.fig)
    return buffer.getvalue()


# --- pages and text -----------------------------------------------------------


@lru_cache(maxsize=32)
def _font(size: float, bold: bool = False, italic: bool = False) -> FontProperties:
    return FontProperties(
        family=FONT_FAMILY,
        size=size,
        weight="bold" if bold else "normal",
        style="italic" if italic else "normal",
    )


@lru_cache(maxsize=16384)
def _text_width(text: str, size: float, bold: bool = False, italic: bool = False) -> float:
    width, _, _ = text_to_path.get_text_width_height_descent(
        text, _font(size, bold, italic), ismath=False
    )
    return width


class _Page:
    """One A4 page, laid out in points from its top-left corner, as it is read."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.y = BODY_TOP  # where the next block starts

    def room(self) -> float:
        return BODY_BOTTOM - self.y

    def text(self, x: float, y: float, s: str, style: _Style, *, ha: str = "left") -> None:
        """`y` is the baseline. Text is never parsed as mathtext: "$" in a comment stays "$"."""
        self.fig.text(
            x / PAGE_W,
            1 - y / PAGE_H,
            s,
            fontproperties=_font(style.size, style.bold, style.italic),
            color=style.colour,
            ha=ha,
            va="baseline",
            parse_math=False,
            usetex=False,
        )

    def rule(self, x0: float, x1: float, y: float, *, colour: str, width: float = 0.6) -> None:
        line = Line2D(
            [x0 / PAGE_W, x1 / PAGE_W],
            [1 - y / PAGE_H] * 2,
            transform=self.fig.transFigure,
            color=colour,
            linewidth=width,
            solid_capstyle="butt",
        )
        self.fig.add_artist(line)

    def shade(self, x: float, y_top: float, width: float, height: float, colour: str) -> None:
        box = Rectangle(
            (x / PAGE_W, 1 - (y_top + height) / PAGE_H),
            width / PAGE_W,
            height / PAGE_H,
            transform=self.fig.transFigure,
            facecolor=colour,
            edgecolor="none",
            zorder=-1,
        )
        self.fig.add_artist(box)


class _Document:
    """The pages so far, and where the next block goes."""

    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.zone = ZoneInfo(data.time_zone)
        self.pages: list[_Page] = []

    @property
    def page(self) -> _Page:
        return self.pages[-1]

    def new_page(self, fig: Figure | None = None) -> _Page:
        self.pages.append(_Page(fig if fig is not None else Figure(figsize=(PAGE_W_IN, PAGE_H_IN))))
        return self.page

    def ensure_room(self, height: float) -> None:
        """Start a new page unless `height` points fit on this one."""
        if self.page.room() < height:
            self.new_page()

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)


@dataclass(frozen=True)
class _Style:
    size: float = BODY_PT
    bold: bool = False
    italic: bool = False
    colour: str = TEXT_COLOUR
    struck: bool = False  # drawn with a line through it (entered in error)


BODY = _Style()
BOLD = _Style(bold=True)
CELL = _Style(size=TABLE_PT)
CELL_BOLD = _Style(size=TABLE_PT, bold=True)
CELL_HIGH = _Style(size=TABLE_PT, bold=True, colour=HIGH_COLOUR)
CELL_NOTE = _Style(size=TABLE_PT, italic=True, colour=MUTED_COLOUR)
CELL_VOID = _Style(size=TABLE_PT, colour=MUTED_COLOUR, struck=True)
CELL_ERROR = _Style(size=TABLE_PT, bold=True, colour=HIGH_COLOUR)
HEADING = _Style(size=12, bold=True)
FOOTER = _Style(size=SMALL_PT, colour=MUTED_COLOUR)


def _line_height(size: float) -> float:
    return size * LINE_SPACING


# Text to lay out: a run is text in one style; a paragraph is runs that flow on
# together (so a bold flag and a plain one can share a line); a cell is
# paragraphs, each starting on a new line. A laid-out line is runs again.
_Run = tuple[str, _Style]
_Para = tuple[_Run, ...]
_Cell = tuple[_Para, ...]
_Line = tuple[_Run, ...]


def _width(text: str, style: _Style) -> float:
    return _text_width(text, style.size, style.bold, style.italic)


def _wrap(para: _Para, width: float) -> list[_Line]:
    """Greedy word wrap to `width` points; a word longer than a line is cut."""
    lines: list[list[_Run]] = [[]]
    used = 0.0
    for text, style in para:
        for word in text.split():
            for piece in _pieces(word, width, style):
                space = _width(" ", style) if lines[-1] else 0.0
                if lines[-1] and used + space + _width(piece, style) > width:
                    lines.append([])
                    used, space = 0.0, 0.0
                lines[-1].append((piece, style))
                used += space + _width(piece, style)
    return [_merged(line) for line in lines]


def _pieces(word: str, width: float, style: _Style) -> list[str]:
    """A word cut into pieces that fit, after a hyphen where there is one."""
    pieces = []
    while _width(word, style) > width and len(word) > 1:
        cut = 1
        while cut < len(word) - 1 and _width(word[: cut + 1], style) <= width:
            cut += 1
        hyphen = word.rfind("-", 0, cut)
        cut = hyphen + 1 if hyphen > 0 else cut
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word]


def _merged(words: list[_Run]) -> _Line:
    # Words in the same style become one text object: fewer objects to draw,
    # and a PDF reader finds the phrase as it was written.
    runs: list[_Run] = []
    for word, style in words:
        if runs and runs[-1][1] == style:
            runs[-1] = (f"{runs[-1][0]} {word}", style)
        else:
            runs.append((word, style))
    return tuple(runs)


def _line_size(line: _Line, default: float) -> float:
    return max((style.size for _, style in line), default=default)


def _draw_line(page: _Page, x: float, baseline: float, line: _Line) -> None:
    for index, (text, style) in enumerate(line):
        page.text(x, baseline, text, style)
        width = _width(text, style)
        if style.struck:
            mid = baseline - style.size * 0.32  # through the middle of the lower-case letters
            page.rule(x, x + width, mid, colour=style.colour)
        if index + 1 < len(line):
            x += width + _width(" ", style)


def _paragraph(doc: _Document, text: str, style: _Style = BODY, *, lead: str = "") -> None:
    """Flowing text across the full width, after an optional bold lead-in.

    Breaks onto a new page between lines.
    """
    height = _line_height(style.size)
    runs = ((lead, replace(style, bold=True)), (text, style)) if lead else ((text, style),)
    for line in _wrap(runs, WIDTH):
        doc.ensure_room(height)
        _draw_line(doc.page, LEFT, doc.page.y + style.size, line)
        doc.page.y += height
    doc.page.y += style.size * 0.5


def _heading(doc: _Document, text: str, *, keep_with: float = 60) -> None:
    """A section heading, moved to a new page if what follows it would not fit."""
    doc.ensure_room(HEADING.size * 2.2 + keep_with)
    doc.page.y += HEADING.size * 0.6
    doc.page.text(LEFT, doc.page.y + HEADING.size, text, HEADING)
    doc.page.y += HEADING.size * 1.6


# --- tables ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    title: str
    width: float  # points


def _cell(text: str, style: _Style = CELL) -> _Cell:
    return (((text, style),),)


@dataclass(frozen=True)
class _LaidOutRow:
    cells: tuple[tuple[_Line, ...], ...]  # per column, the wrapped lines
    height: float


def _lay_out_row(
    columns: Sequence[_Column], cells: Sequence[_Cell], *, pad: float = CELL_PAD_X
) -> _LaidOutRow:
    laid_out = tuple(
        tuple(line for para in cell for line in _wrap(para, column.width - 2 * pad))
        for column, cell in zip(columns, cells, strict=True)
    )
    height = max(
        sum(_line_height(_line_size(line, TABLE_PT)) for line in lines) for lines in laid_out
    )
    return _LaidOutRow(laid_out, height + 2 * CELL_PAD_Y)


def _table(
    doc: _Document, title: str, columns: Sequence[_Column], rows: Sequence[Sequence[_Cell]]
) -> None:
    """A table under a heading; the heading (continued) and header row repeat on each page."""
    header = _lay_out_row(columns, [_cell(c.title, CELL_BOLD) for c in columns])
    laid_out = [_lay_out_row(columns, row) for row in rows]
    first = laid_out[0].height if laid_out else 0
    _heading(doc, title, keep_with=header.height + first)
    _header_row(doc, columns, header)
    for index, row in enumerate(laid_out):
        if doc.page.room() < row.height:
            doc.page.rule(LEFT, RIGHT, doc.page.y, colour=RULE_COLOUR)
            doc.new_page()
            _heading(doc, f"{title} (continued)", keep_with=header.height + row.height)
            _header_row(doc, columns, header)
        if index % 2:
            doc.page.shade(LEFT, doc.page.y, WIDTH, row.height, STRIPE_COLOUR)
        _draw_row(doc.page, columns, row)
    doc.page.rule(LEFT, RIGHT, doc.page.y, colour=RULE_COLOUR)
    doc.page.y += 6


def _header_row(doc: _Document, columns: Sequence[_Column], header: _LaidOutRow) -> None:
    doc.page.rule(LEFT, RIGHT, doc.page.y, colour=TEXT_COLOUR, width=0.8)
    _draw_row(doc.page, columns, header)
    doc.page.rule(LEFT, RIGHT, doc.page.y, colour=TEXT_COLOUR, width=0.8)


def _draw_row(
    page: _Page, columns: Sequence[_Column], row: _LaidOutRow, *, pad: float = CELL_PAD_X
) -> None:
    x = LEFT
    for column, lines in zip(columns, row.cells, strict=True):
        y = page.y + CELL_PAD_Y
        for line in lines:
            size = _line_size(line, TABLE_PT)
            _draw_line(page, x + pad, y + size, line)
            y += _line_height(size)
        x += column.width
    page.y += row.height


# --- page 1 ---------------------------------------------------------------------


def _first_page(doc: _Document) -> None:
    """Title, patient block, the trend chart and a summary."""
    block = _patient_rows(doc)
    chart_top = BODY_TOP + TITLE_HEIGHT + sum(row.height for row in block) + 4
    page = doc.new_page(_chart_page_figure(doc.data.chart, top=chart_top))
    title = _Style(size=18, bold=True)
    page.text(LEFT, page.y + 18, "CTC report", title)
    subtitle_x = LEFT + _width("CTC report", title) + 14
    subtitle = "CellSearch circulating tumour cell counts"
    page.text(subtitle_x, page.y + 18, subtitle, _Style(colour=MUTED_COLOUR))
    page.y += TITLE_HEIGHT
    for row, columns in zip(block, (PATIENT_COLUMNS,) * 3 + (CUTOFF_COLUMNS,), strict=True):
        _draw_row(page, columns, row, pad=0)
    page.y = chart_top + CHART_H_IN * 72 + 8
    _summary(doc)


TITLE_HEIGHT = 30
PATIENT_COLUMNS = (_Column("", 78), _Column("", 232), _Column("", 64), _Column("", WIDTH - 374))
CUTOFF_COLUMNS = (_Column("", 78), _Column("", WIDTH - 78))
LABEL = _Style(colour=MUTED_COLOUR)


def _patient_rows(doc: _Document) -> list[_LaidOutRow]:
    """The patient block as table rows without rules, so long values wrap, never overlap."""
    data = doc.data
    age = _age(data.birth_date, doc.local(data.generated_at).date())
    rows = [
        ("Patient", data.patient_name, "MRN", data.mrn),
        ("Date of birth", f"{data.birth_date} (age {age})", "Sex", data.sex),
        ("Cancer type", _cancer_type_text(data), "Oncologist", data.oncologist or "not recorded"),
    ]
    laid_out = [
        _lay_out_row(
            PATIENT_COLUMNS,
            [_cell(left, LABEL), _cell(value, BOLD), _cell(right, LABEL), _cell(other, BOLD)],
            pad=0,
        )
        for left, value, right, other in rows
    ]
    cutoff = [_cell("Cut-off", LABEL), _cell(_cutoff_sentence(data), BODY)]
    return [*laid_out, _lay_out_row(CUTOFF_COLUMNS, cutoff, pad=0)]


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
            if lines and _text_width(joined, size) <= width:
                lines[-1] = joined
            else:
                lines.append(part)
        if len(lines) > 1:
            title.set_text("\n".join(lines))


def _age(birth: date, on: date) -> int:
    before_birthday = (on.month, on.day) < (birth.month, birth.day)
    return on.year - birth.year - before_birthday


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
    _heading(doc, "Summary", keep_with=40)
    for lead, text in _summary_sentences(doc.data):
        _paragraph(doc, text, lead=lead)


def _summary_sentences(data: ReportData) -> list[tuple[str, str]]:
    """(bold lead, text) pairs: the latest count, the draws, the latest flags, upcoming cycles."""
    if not data.assessments and not data.voided:
        sentences = [("", NO_DRAWS_TEXT)]
    else:
        sentences = [("Latest evaluable count: ", _latest_text(data)), _draw_counts(data)]
    latest = data.assessments[-1] if data.assessments else None
    if latest is not None and latest.flags:
        messages = "; ".join(flag.message for flag in latest.flags)
        sentences.append((f"Flags on the latest draw ({latest.draw.drawn_on}): ", messages + "."))
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
    interval = f"; 95% interval {_interval_text(latest.ci95)}" if latest.ci95 else ""
    return f"{rules.count_phrase(_rate(latest))} on {latest.draw.drawn_on}, {category}{interval}."


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
    return (lead, f"(day 1 {cycle.scheduled_date}, {cycle.status}): {flags}.")


# --- the draws table ----------------------------------------------------------

# "Result" is the count in its blood volume, or the status of a draw without one
# (rejected, failed, pending, cancelled): one column, so the flags have room.
DRAW_COLUMNS = (
    _Column("Drawn (local)", 80),
    _Column("Accession", 62),
    _Column("Result", 62),
    _Column("Per 7.5 mL", 44),
    _Column("95% interval", 54),
    _Column("Category", 62),
    _Column("Flags and notes", WIDTH - 364),
)


def _draws_section(doc: _Document) -> None:
    if len(doc.pages) == 1:  # the chart page; a summary that ran over has started page 2
        doc.new_page()
    rows = _draw_rows(doc)
    if not rows:
        _heading(doc, "CTC draws")
        _paragraph(doc, NO_DRAWS_TEXT)
        return
    _table(doc, "CTC draws (oldest first)", DRAW_COLUMNS, rows)


def _draw_rows(doc: _Document) -> list[list[_Cell]]:
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


def _assessed_row(doc: _Document, a: rules.DrawAssessment) -> list[_Cell]:
    draw = a.draw
    return [
        _cell(_local_time_text(doc, draw.drawn_at)),
        _cell(_accession_text(doc, draw.id)),
        _cell(_result_text(draw)),
        _cell(_rate_text(a)),
        _cell(_interval_text(a.ci95, joiner="–") if a.ci95 else DASH),
        _cell(_category_text(a)),
        _flags_cell(a.flags, _note_for(doc, draw.id)),
    ]


def _result_text(draw: rules.DrawIn) -> str:
    if draw.status != rules.DrawStatus.RESULTED or draw.ctc_count is None:
        return draw.status
    return f"{draw.ctc_count:,} in {_volume_text(draw.blood_volume_ml)} mL"


def _accession_text(doc: _Document, draw_id: int | None) -> str:
    accession = doc.data.accessions.get(draw_id, "") if draw_id is not None else ""
    return accession or DASH


def _note_for(doc: _Document, draw_id: int | None) -> str:
    return _clipped(doc.data.comments.get(draw_id, "")) if draw_id is not None else ""


def _voided_row(doc: _Document, v: VoidedDraw) -> list[_Cell]:
    result = f"{v.ctc_count:,} cells" if v.ctc_count is not None else v.status
    return [
        _cell(_local_time_text(doc, v.drawn_at), CELL_VOID),
        _cell(""),
        _cell(result, CELL_VOID),
        _cell(DASH),
        _cell(DASH),
        _cell(DASH),
        _cell(f"ENTERED IN ERROR: {_clipped(v.error_reason) or 'no reason given'}", CELL_ERROR),
    ]


def _clipped(text: str, limit: int = NOTE_LIMIT) -> str:
    """Free text cut to `limit` characters, so that one table row never outgrows a page."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "… (see the record)"


def _local_time_text(doc: _Document, moment: datetime) -> str:
    _check_aware(moment, "drawn_at")
    return doc.local(moment).strftime("%Y-%m-%d %H:%M")


def _rate(a: rules.DrawAssessment) -> float:
    assert a.rate_per_7_5_ml is not None  # only evaluable draws get here
    return a.rate_per_7_5_ml


def _rate_text(a: rules.DrawAssessment) -> str:
    if not a.evaluable:
        return DASH
    rate = _rate(a)
    return "none detected" if rate == 0 else rules.format_rate(rate)


def _category_text(a: rules.DrawAssessment) -> str:
    if a.category is not None:
        return a.category.value
    return "not classified" if a.evaluable else DASH


def _interval_text(ci95: tuple[float, float], *, joiner: str = " to ") -> str:
    return f"{_bound_text(ci95[0])}{joiner}{_bound_text(ci95[1])}"


def _bound_text(value: float) -> str:
    # Two decimals where they matter (near the cut-offs), fewer for big counts.
    if value == 0:
        return "0"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _volume_text(volume: Decimal | float) -> str:
    value = volume if isinstance(volume, Decimal) else Decimal(repr(volume))
    return format(value.normalize(), "f")


def _flags_cell(flags: Sequence[rules.Flag], comment: str = "") -> _Cell:
    """Flag words on one flowing line, high severity in bold red; a comment below."""
    words = [(FLAG_WORDS.get(f.code, f.code), _flag_style(f)) for f in flags]
    para = tuple(
        (f"{word}," if index + 1 < len(words) else word, style)
        for index, (word, style) in enumerate(words)
    )
    cell: _Cell = (para,) if para else ()
    if comment:
        cell += ((("Note: " + comment, CELL_NOTE),),)
    return cell or _cell("")


def _flag_style(flag: rules.Flag) -> _Style:
    return CELL_HIGH if flag.severity is rules.Severity.HIGH else CELL


# --- cycles and imaging -------------------------------------------------------

CYCLE_COLUMNS = (
    _Column("Therapy line", 132),
    _Column("Cycle", 36),
    _Column("Day 1", 58),
    _Column("Given", 58),
    _Column("Status", 100),
    _Column("Before the cycle (upcoming only)", WIDTH - 384),
)


def _cycles_section(doc: _Document) -> None:
    if not doc.data.cycles:
        _heading(doc, "Treatment cycles", keep_with=20)
        _paragraph(doc, "No treatment cycles recorded.")
        return
    ordered = sorted(
        doc.data.cycles, key=lambda item: (item[0].line_number, item[1].number, item[1].id)
    )
    rows = [_cycle_row(doc, *item) for item in ordered]
    _table(doc, "Treatment cycles", CYCLE_COLUMNS, rows)


def _cycle_row(
    doc: _Document,
    line: rules.LineIn,
    cycle: rules.CycleIn,
    assessment: rules.CycleAssessment | None,
) -> list[_Cell]:
    regimen = f"L{line.line_number} {line.regimen}".strip()
    line_cell = _cell(regimen)
    if line.contains_doxorubicin:
        line_cell += ((("contains doxorubicin", CELL_NOTE),),)
    return [
        line_cell,
        _cell(f"C{cycle.number}"),
        _cell(str(cycle.scheduled_date)),
        _cell(str(cycle.given_date) if cycle.given_date else DASH),
        _cell(_cycle_status_text(doc, cycle)),
        _cycle_flags_cell(assessment if _is_upcoming(cycle) else None),
    ]


def _cycle_status_text(doc: _Document, cycle: rules.CycleIn) -> str:
    reason = _clipped(doc.data.cycle_reasons.get(cycle.id, ""))
    if reason and cycle.status in (rules.CycleStatus.DELAYED, rules.CycleStatus.CANCELLED):
        return f"{cycle.status}: {reason}"
    return cycle.status


def _cycle_flags_cell(assessment: rules.CycleAssessment | None) -> _Cell:
    if assessment is None:
        return _cell(DASH)
    cell = _flags_cell(assessment.flags) if assessment.flags else _cell("no flags")
    if assessment.draw is not None:
        cell += (((f"from the draw of {assessment.draw.draw.drawn_on}", CELL_NOTE),),)
    return cell


IMAGING_COLUMNS = (
    _Column("Date", 80),
    _Column("Modality", 120),
    _Column("RECIST 1.1 response", 120),
)


def _imaging_section(doc: _Document) -> None:
    points = sorted(doc.data.imaging, key=lambda p: p.performed_on)
    if not points:
        _heading(doc, "Imaging", keep_with=20)
        _paragraph(doc, "No imaging recorded.")
        return
    rows = [[_cell(str(p.performed_on)), _cell(p.modality), _cell(p.response)] for p in points]
    _table(doc, "Imaging", IMAGING_COLUMNS, rows)
    codes = [code for code in RECIST_TERMS if any(p.response == code for p in points)]
    legend = "RECIST 1.1 codes: " + "; ".join(RECIST_TERMS[code] for code in codes) + "."
    _paragraph(doc, legend, _Style(size=SMALL_PT, colour=MUTED_COLOUR))


# --- how to read this report ----------------------------------------------------


def _how_to_read_section(doc: _Document) -> None:
    _heading(doc, "How to read this report")
    for lead, text in _reading_paragraphs(doc.data):
        _paragraph(doc, text, lead=lead)
    codes = _flag_codes_shown(doc.data)
    if codes:
        rows = [_flag_row(code, doc.data) for code in codes]
        columns = (_Column("Flag", 150), _Column("Meaning", WIDTH - 150))
        _table(doc, "Flags in this report", columns, rows)


def _flag_row(code: str, data: ReportData) -> list[_Cell]:
    severity = rules.FLAG_SEVERITY[rules.FlagCode(code)].value
    name: _Cell = (
        ((FLAG_WORDS.get(code, code), CELL_BOLD),),
        ((f"{code} ({severity})", CELL_NOTE),),
    )
    return [name, _cell(flag_explanation(code, data))]


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


def _running_header(page: _Page, data: ReportData) -> None:
    """Name, MRN and date of birth on one line, or on two smaller ones for a long name."""
    top = MARGIN + SMALL_PT + 1
    identity = f"{data.patient_name}   ·   MRN {data.mrn}   ·   born {data.birth_date}"
    label = _Style(size=SMALL_PT, colour=MUTED_COLOUR)
    if _width(identity, BOLD) + _width("CTC report", label) + 20 < WIDTH:
        page.text(LEFT, top, identity, BOLD)
        page.text(RIGHT, top, "CTC report", label, ha="right")
    else:
        small = replace(BOLD, size=SMALL_PT)
        # The full name is in the patient block; here it must not run off the page.
        lines = _wrap(((data.patient_name, small),), WIDTH - 12)
        name = lines[0][0][0] + (" …" if len(lines) > 1 else "")
        page.text(LEFT, top - 2, name, small)
        page.text(LEFT, top + 8, f"MRN {data.mrn}   ·   born {data.birth_date}", small)
        top += 8
    page.rule(LEFT, RIGHT, top + 5, colour=RULE_COLOUR)


def _header_and_footer(page: _Page, data: ReportData, number: int, total: int) -> None:
    _running_header(page, data)

    generated = data.generated_at.astimezone(ZoneInfo(data.time_zone))
    bottom = PAGE_H - MARGIN
    page.rule(LEFT, RIGHT, bottom - 21, colour=RULE_COLOUR)
    line = (
        f"Generated {generated:%Y-%m-%d %H:%M} ({data.time_zone}) by {data.generated_by}"
        f" · page {number} of {total}"
    )
    page.text(LEFT, bottom - 11, line, FOOTER)
    page.text(LEFT, bottom, "CTC counts supplement imaging; they never replace it.", FOOTER)
