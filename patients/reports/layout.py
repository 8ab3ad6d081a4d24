"""A small typesetting engine for PDF documents, on matplotlib.

Pages, styled text that wraps and flows from page to page, headings kept with
what follows them, and tables whose heading and header row repeat on each new
page. It knows nothing about what it sets: patients.reports.ctc_report says
what goes on the report and uses this to put it on paper.

Layout is done by hand, in points measured from the top-left corner of an A4
page, because matplotlib has no flowing text or tables that split across
pages. Everything stays inside 15 mm margins so the page also prints on US
Letter without being cut. Pages are matplotlib Figures saved with the PDF
backend, never pyplot (pyplot keeps global state that leaks in a web server).
"""

from __future__ import annotations

import io
import math
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import matplotlib
from matplotlib import colors as mcolors
from matplotlib.artist import Artist, allow_rasterization
from matplotlib.backend_bases import GraphicsContextBase, RendererBase
from matplotlib.backends.backend_pdf import Op, PdfFile, PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.textpath import text_to_path

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

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
SMALL_PT = 8.0  # the smallest text on a page
TEXT_COLOUR = "#222222"
MUTED_COLOUR = "#555555"
RULE_COLOUR = "#999999"
STRIPE_COLOUR = "#f2f2f2"
CELL_PAD_X = 3.0
CELL_PAD_Y = 3.0
LINE_SPACING = 1.25  # line height as a multiple of the font size

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
def text_width(text: str, size: float, bold: bool = False, italic: bool = False) -> float:
    width, _, _ = text_to_path.get_text_width_height_descent(
        text, _font(size, bold, italic), ismath=False
    )
    return width


class Page:
    """One A4 page, laid out in points from its top-left corner, as it is read."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.y = BODY_TOP  # where the next block starts
        self._texts = _PageTexts()
        fig.add_artist(self._texts)

    def room(self) -> float:
        return BODY_BOTTOM - self.y

    def text(
        self, x: float, y: float, s: str, style: Style, *, ha: Literal["left", "right"] = "left"
    ) -> None:
        """`y` is the baseline. Text is never parsed as mathtext: "$" in a comment stays "$"."""
        if s:
            self._texts.items.append((x / PAGE_W, 1 - y / PAGE_H, s, style, ha == "right"))

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


class _PageTexts(Artist):
    """Every text of a page, drawn in the order it was set, as matplotlib's Text would.

    A report has thousands of table cells. A matplotlib Text per cell costs its
    construction and, when drawn, a layout of its box; the PDF backend then lays
    out its glyphs and writes them. Here each text goes straight to the
    renderer's `draw_text` at its baseline, and in a PDF file each distinct
    string in each font is laid out once (see _PdfTextCache): a table row costs
    a fraction of what it did. The file is byte for byte the one Text artists
    write (tests/reports/test_layout_text.py compares them).
    """

    zorder = 3  # matplotlib's Text's: above the rules (2) and the stripes (-1)

    def __init__(self) -> None:
        super().__init__()
        # (x, y as fractions of the page from its bottom-left, text, style, right-aligned)
        self.items: list[tuple[float, float, str, Style, bool]] = []
        self._antialiased = bool(matplotlib.rcParams["text.antialiased"])

    @allow_rasterization
    def draw(self, renderer: RendererBase) -> None:
        if not self.get_visible():
            return
        transform = self.get_transform()  # the figure's fractions, set by add_artist
        canvas_h = renderer.get_canvas_width_height()[1]
        flip = renderer.flipy()
        cache = _PdfTextCache.of(renderer)
        for fx, fy, s, style, right in self.items:
            x, y = transform.transform((fx, fy))
            prop = _font(style.size, style.bold, style.italic)
            if right:
                x = x - renderer.get_text_width_height_descent(s, prop, ismath=False)[0]
            if flip:
                y = canvas_h - y
            colour = mcolors.to_rgba(style.colour)
            gc = renderer.new_gc()  # as Text.draw sets up its own, for text without alpha
            gc.set_foreground(colour, isRGBA=True)
            gc.set_antialiased(self._antialiased)
            if cache is None:
                renderer.draw_text(gc, x, y, s, prop, 0, ismath=False)
            else:
                key = (s, style.size, style.bold, style.italic)
                cache.draw_text(renderer, gc, colour, x, y, s, prop, key)
            gc.restore()


class _PdfTextCache:
    """One PDF file's glyph runs, laid out once per distinct string and font.

    matplotlib's PDF `draw_text` writes `q`, the text's position as a `cm`
    matrix, then the glyphs (font selection, kerned glyph codes in `TJ`) and
    `Q`; only the `cm` line depends on where the text goes. The first time a
    string is drawn in a font, `draw_text` writes it (and records its glyphs
    for the embedded font subset) and what follows its `cm` line is kept; every
    later time, the same bytes are written after a `cm` line of its own. Should
    a `draw_text` ever write something else first (another matplotlib), the
    string is simply drawn by `draw_text` every time.
    """

    # Keyed weakly by the file, and holding no reference to it, so that a cache
    # goes with its file.
    _of_file: weakref.WeakKeyDictionary[PdfFile, _PdfTextCache] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.glyphs: dict[tuple[str, float, bool, bool], bytes | None] = {}

    @classmethod
    def of(cls, renderer: RendererBase) -> _PdfTextCache | None:
        """The cache of the PDF file `renderer` writes, or None for any other renderer."""
        file = getattr(renderer, "file", None)
        if not isinstance(file, PdfFile) or not hasattr(renderer, "check_gc"):
            return None
        cache = cls._of_file.get(file)
        if cache is None:
            cache = cls._of_file[file] = cls()
        return cache

    def draw_text(
        self,
        renderer: Any,
        gc: GraphicsContextBase,
        colour: tuple[float, float, float, float],
        x: float,
        y: float,
        s: str,
        prop: FontProperties,
        key: tuple[str, float, bool, bool],
    ) -> None:
        file: PdfFile = renderer.file
        # The colour first, as draw_text does: it then finds nothing to change.
        renderer.check_gc(gc, colour)
        glyphs = self.glyphs.get(key, b"")
        if glyphs:
            _position(file, x, y)
            file.write(glyphs)
            return
        written = _captured(file, lambda: renderer.draw_text(gc, x, y, s, prop, 0, ismath=False))
        if key not in self.glyphs:
            head = _captured(file, lambda: _position(file, x, y))
            self.glyphs[key] = written[len(head) :] if written.startswith(head) else None
        file.write(written)


def _position(file: PdfFile, x: float, y: float) -> None:
    # As the PDF backend's draw_text writes them for an angle of 0.
    a = math.radians(0)
    file.output(Op.gsave)
    file.output(math.cos(a), math.sin(a), -math.sin(a), math.cos(a), x, y, Op.concat_matrix)


def _captured(file: PdfFile, write: Callable[[], object]) -> bytes:
    """What `write` writes into `file`, held back rather than written."""
    chunks: list[bytes] = []
    file.write = chunks.append  # type: ignore[method-assign]
    try:
        write()
    finally:
        del file.write
    return b"".join(chunks)


class Document:
    """The pages so far, and where the next block goes."""

    def __init__(self) -> None:
        self.pages: list[Page] = []

    @property
    def page(self) -> Page:
        return self.pages[-1]

    def new_page(self, fig: Figure | None = None) -> Page:
        self.pages.append(Page(fig if fig is not None else Figure(figsize=(PAGE_W_IN, PAGE_H_IN))))
        return self.page

    def ensure_room(self, height: float) -> None:
        """Start a new page unless `height` points fit on this one."""
        if self.page.room() < height:
            self.new_page()


@dataclass(frozen=True)
class Style:
    size: float = BODY_PT
    bold: bool = False
    italic: bool = False
    colour: str = TEXT_COLOUR
    struck: bool = False  # drawn with a line through it


BODY = Style()
BOLD = Style(bold=True)
CELL = Style(size=TABLE_PT)
CELL_BOLD = Style(size=TABLE_PT, bold=True)
HEADING = Style(size=12, bold=True)
FOOTER = Style(size=SMALL_PT, colour=MUTED_COLOUR)


def _line_height(size: float) -> float:
    return size * LINE_SPACING


# Text to lay out: a run is text in one style; a paragraph is runs that flow on
# together (so a bold flag and a plain one can share a line); a cell is
# paragraphs, each starting on a new line. A laid-out line is runs again.
Run = tuple[str, Style]
Para = tuple[Run, ...]
Cell = tuple[Para, ...]
Line = tuple[Run, ...]


def width_of(text: str, style: Style) -> float:
    return text_width(text, style.size, style.bold, style.italic)


def wrap(para: Para, width: float) -> list[Line]:
    """Greedy word wrap to `width` points; a word longer than a line is cut."""
    lines: list[list[Run]] = [[]]
    used = 0.0
    for text, style in para:
        for word in text.split():
            for piece in _pieces(word, width, style):
                space = width_of(" ", style) if lines[-1] else 0.0
                if lines[-1] and used + space + width_of(piece, style) > width:
                    lines.append([])
                    used, space = 0.0, 0.0
                lines[-1].append((piece, style))
                used += space + width_of(piece, style)
    return [_merged(line) for line in lines]


def _pieces(word: str, width: float, style: Style) -> list[str]:
    """A word cut into pieces that fit, after a hyphen where there is one."""
    pieces = []
    while width_of(word, style) > width and len(word) > 1:
        cut = 1
        while cut < len(word) - 1 and width_of(word[: cut + 1], style) <= width:
            cut += 1
        hyphen = word.rfind("-", 0, cut)
        cut = hyphen + 1 if hyphen > 0 else cut
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word]


def _merged(words: list[Run]) -> Line:
    # Words in the same style become one text object: fewer objects to draw,
    # and a PDF reader finds the phrase as it was written.
    runs: list[Run] = []
    for word, style in words:
        if runs and runs[-1][1] == style:
            runs[-1] = (f"{runs[-1][0]} {word}", style)
        else:
            runs.append((word, style))
    return tuple(runs)


def _line_size(line: Line, default: float) -> float:
    return max((style.size for _, style in line), default=default)


def _draw_line(page: Page, x: float, baseline: float, line: Line) -> None:
    for index, (text, style) in enumerate(line):
        page.text(x, baseline, text, style)
        width = width_of(text, style)
        if style.struck:
            mid = baseline - style.size * 0.32  # through the middle of the lower-case letters
            page.rule(x, x + width, mid, colour=style.colour)
        if index + 1 < len(line):
            x += width + width_of(" ", style)


def paragraph(doc: Document, text: str, style: Style = BODY, *, lead: str = "") -> None:
    """Flowing text across the full width, after an optional bold lead-in.

    Breaks onto a new page between lines.
    """
    height = _line_height(style.size)
    runs = ((lead, replace(style, bold=True)), (text, style)) if lead else ((text, style),)
    for line in wrap(runs, WIDTH):
        doc.ensure_room(height)
        _draw_line(doc.page, LEFT, doc.page.y + style.size, line)
        doc.page.y += height
    doc.page.y += style.size * 0.5


def heading(doc: Document, text: str, *, keep_with: float = 60) -> None:
    """A section heading, moved to a new page if what follows it would not fit."""
    doc.ensure_room(HEADING.size * 2.2 + keep_with)
    doc.page.y += HEADING.size * 0.6
    doc.page.text(LEFT, doc.page.y + HEADING.size, text, HEADING)
    doc.page.y += HEADING.size * 1.6


# --- tables ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    width: float  # points


def text_cell(text: str, style: Style = CELL) -> Cell:
    return (((text, style),),)


@dataclass(frozen=True)
class LaidOutRow:
    cells: tuple[tuple[Line, ...], ...]  # per column, the wrapped lines
    height: float


def lay_out_row(
    columns: Sequence[Column], cells: Sequence[Cell], *, pad: float = CELL_PAD_X
) -> LaidOutRow:
    laid_out = tuple(
        tuple(line for para in cell for line in wrap(para, column.width - 2 * pad))
        for column, cell in zip(columns, cells, strict=True)
    )
    height = max(
        sum(_line_height(_line_size(line, TABLE_PT)) for line in lines) for lines in laid_out
    )
    return LaidOutRow(laid_out, height + 2 * CELL_PAD_Y)


def table(
    doc: Document,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    keep_whole_below: float = 0,
) -> None:
    """A table under a heading; the heading (continued) and header row repeat on each page.

    A table no taller than `keep_whole_below` points starts on a new page rather
    than be split across two.
    """
    header = lay_out_row(columns, [text_cell(c.title, CELL_BOLD) for c in columns])
    laid_out = [lay_out_row(columns, row) for row in rows]
    first = laid_out[0].height if laid_out else 0
    whole = header.height + sum(row.height for row in laid_out)
    heading(doc, title, keep_with=whole if whole <= keep_whole_below else header.height + first)
    _header_row(doc, columns, header)
    for index, row in enumerate(laid_out):
        if doc.page.room() < row.height:
            doc.page.rule(LEFT, RIGHT, doc.page.y, colour=RULE_COLOUR)
            doc.new_page()
            heading(doc, f"{title} (continued)", keep_with=header.height + row.height)
            _header_row(doc, columns, header)
        if index % 2:
            doc.page.shade(LEFT, doc.page.y, WIDTH, row.height, STRIPE_COLOUR)
        draw_row(doc.page, columns, row)
    doc.page.rule(LEFT, RIGHT, doc.page.y, colour=RULE_COLOUR)
    doc.page.y += 6


def _header_row(doc: Document, columns: Sequence[Column], header: LaidOutRow) -> None:
    doc.page.rule(LEFT, RIGHT, doc.page.y, colour=TEXT_COLOUR, width=0.8)
    draw_row(doc.page, columns, header)
    doc.page.rule(LEFT, RIGHT, doc.page.y, colour=TEXT_COLOUR, width=0.8)


def draw_row(
    page: Page, columns: Sequence[Column], row: LaidOutRow, *, pad: float = CELL_PAD_X
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


# --- the file -------------------------------------------------------------------

# Rendering settings that must not depend on the caller's rcParams: TrueType
# (Type 42) fonts keep the text extractable and searchable; no dates in the file.
_PDF_RC: dict[RcKeyType, Any] = {
    "pdf.fonttype": 42,
    "pdf.compression": 6,
    "pdf.use14corefonts": False,
}


def pdf_bytes(pages: Sequence[Page], *, title: str, rc_lock: AbstractContextManager[Any]) -> bytes:
    """The pages as one PDF file: same pages, same bytes.

    `rc_lock` is the lock every matplotlib encoder in the process holds while it
    changes rcParams (process-wide), so that a concurrent encoder can neither
    see ours nor restore its own mid-way.
    """
    buffer = io.BytesIO()
    metadata = {"Title": title, "CreationDate": None, "Producer": None}
    with (
        rc_lock,
        matplotlib.rc_context(_PDF_RC),
        PdfPages(buffer, metadata=metadata) as pdf,
    ):
        for page in pages:
            pdf.savefig(page.fig)
    return buffer.getvalue()
