"""Tests for patients.reports.ctc_report: real PDF bytes from realistic series, no database.

The series are assessed with rules.assess_draws and rules.assess_cycle, as the
view will do. The PDF's text is read back with a small reader below (the
project has no PDF library): matplotlib writes each page's text as TrueType
(Type 42) strings of two-byte codes, which the reader maps to text through each
font's ToUnicode table, as a PDF viewer's search or copy does.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import matplotlib
import pytest
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from patients import rules, wording
from patients.reports import chart_data, invented, layout, report_tables
from patients.reports.ctc_report import ReportData, flag_explanation, report_pdf
from patients.reports.invented import InventedSeries
from patients.reports.report_data import FLAG_SEVERITIES, FLAG_WORDS, Acknowledged, VoidedDraw
from tests.paths import ROOT

LONDON = ZoneInfo("Europe/London")
GENERATED_AT = datetime(2025, 11, 20, 14, 5, tzinfo=UTC)  # 14:05 in London (GMT)
FORBIDDEN = ("progression", "change therapy", "normal", "negative")

# --- building realistic series --------------------------------------------


_series = InventedSeries(tz=LONDON)  # drawn at 09:30 London time
draw = _series.draw
line = _series.line
cycles_of = _series.cycles


def report_data(
    draws: list[rules.DrawIn],
    *,
    cancer_type: str = "breast",
    today: date | None = None,
    lines: tuple[rules.LineIn, ...] = (),
    cycles: tuple[rules.CycleIn, ...] = (),
    imaging: tuple[chart_data.ImagingPoint, ...] = (),
    voided: tuple[VoidedDraw, ...] = (),
    accessions: dict[int, str] | None = None,
    comments: dict[int, str] | None = None,
    cycle_reasons: dict[int, str] | None = None,
    cycle_acknowledged: dict[int, Acknowledged] | None = None,
    result_acknowledged: dict[int, Acknowledged] | None = None,
) -> ReportData:
    chart = invented.chart_data(
        cancer_type,
        draws,
        today=today or GENERATED_AT.date(),
        lines=lines,
        cycles=cycles,
        imaging=imaging,
    )
    cutoff, assessments = chart.cutoff, chart.assessments
    by_line = {therapy.id: therapy for therapy in lines}
    # As the view does: every cycle assessed on the day the report is generated.
    generated_on = GENERATED_AT.astimezone(LONDON).date()
    cycle_rows = [
        (by_line[cycle.line_id], cycle, rules.assess_cycle(cycle, assessments, today=generated_on))
        for cycle in cycles
    ]
    return ReportData(
        patient_name="Jane Doe",
        mrn="MRN-004711",
        birth_date=date(1961, 11, 20),
        sex="Female",
        cancer_type=cancer_type,
        cutoff=cutoff,
        oncologist="Dr Amara Okafor",
        chart=chart,
        assessments=assessments,
        voided=voided,
        cycles=cycle_rows,
        imaging=imaging,
        accessions=accessions or {},
        comments=comments or {},
        time_zone="Europe/London",
        generated_at=GENERATED_AT,
        generated_by="nurse.lee",
        cycle_reasons=cycle_reasons or {},
        cycle_acknowledged=cycle_acknowledged or {},
        result_acknowledged=result_acknowledged or {},
    )


def breast_conversion() -> ReportData:
    """Two lines, a conversion to unfavourable, a rejected draw, one 5 mL draw, a voided
    draw, imaging, a cancelled cycle and a delayed one whose pre-cycle draw failed."""
    today = GENERATED_AT.date()
    first = line(1, date(2025, 3, 3), "Paclitaxel weekly")
    second = line(2, date(2025, 8, 4), "Capecitabine")
    first_cycles = cycles_of(first, 7, every=21, today=today)
    second_cycles = cycles_of(second, 7, every=21, today=today)
    cancelled = replace(first_cycles[6], given_date=None, status="cancelled")
    # Cycle 6 of line 2 (day 1 was 2025-11-17) is put back a week: its window still
    # opens a week before the day first planned.
    delayed = replace(
        second_cycles[5],
        scheduled_date=date(2025, 11, 24),
        first_scheduled_date=second_cycles[5].scheduled_date,
        given_date=None,
        status="delayed",
    )
    cycles = (*first_cycles[:6], cancelled, *second_cycles[:5], delayed, second_cycles[6])
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
        draw(date(2025, 11, 18), status="failed"),
    ]
    voided = (
        VoidedDraw(
            drawn_at=datetime(2025, 6, 13, 8, 15, tzinfo=LONDON),
            ctc_count=90,
            status="resulted",
            error_reason="result belongs to another patient",
        ),
    )
    imaging = (
        chart_data.ImagingPoint(date(2025, 4, 30), "CT", "PR"),
        chart_data.ImagingPoint(date(2025, 6, 30), "CT", "PD"),
        chart_data.ImagingPoint(date(2025, 6, 30), "Bone scan", "SD"),
        chart_data.ImagingPoint(date(2025, 9, 29), "CT", "SD"),
    )
    return report_data(
        draws,
        lines=(first, second),
        cycles=cycles,
        imaging=imaging,
        voided=voided,
        accessions={d.id: f"CS25-{1000 + i:05d}" for i, d in enumerate(draws) if d.id},
        comments={draws[3].id: "tube older than 96 h on arrival"},
        cycle_reasons={
            cancelled.id: "patient choice after cycle 6",
            delayed.id: "neutropenia, grade 3",
        },
    )


def long_history(number_of_draws: int) -> ReportData:
    """A prostate patient drawn every 3 weeks for years, on three lines, one with doxorubicin."""
    start = date(2017, 1, 9)
    today = start + timedelta(days=21 * number_of_draws + 10)
    lines = (
        line(1, start, "Docetaxel"),
        line(2, start + timedelta(days=21 * number_of_draws // 3), "Cabazitaxel"),
        line(3, start + timedelta(days=42 * number_of_draws // 3), "Doxorubicin", doxorubicin=True),
    )
    cycles = tuple(
        c
        for index, therapy in enumerate(lines)
        for c in cycles_of(therapy, number_of_draws // 3 + 1, every=21, today=today)
        if c.scheduled_date < (lines[index + 1].start_date if index < 2 else today + timedelta(60))
    )
    pattern = [1, 0, 3, 6, 12, 4, 2, 9, 30, 7, 0]
    draws = [
        draw(
            start + timedelta(days=21 * i - 4 + (i % 3 == 0) * 6),
            pattern[i % len(pattern)] * (1 + i // 40),
            status="rejected" if i % 17 == 5 else "resulted",
        )
        for i in range(number_of_draws)
    ]
    return report_data(draws, cancer_type="prostate", today=today, lines=lines, cycles=cycles)


def doxorubicin_series() -> ReportData:
    """A colorectal patient on a doxorubicin-containing line, drawn 3 days after a dose."""
    therapy = line(1, date(2025, 9, 1), "Doxorubicin + 5-FU", doxorubicin=True)
    cycles = tuple(cycles_of(therapy, 5, every=21, today=GENERATED_AT.date()))
    draws = [draw(date(2025, 8, 28), 1), draw(date(2025, 9, 4), 2), draw(date(2025, 9, 19), 2)]
    return report_data(draws, cancer_type="colorectal", lines=(therapy,), cycles=cycles)


def unclassifiable() -> ReportData:
    """A cancer type without a cut-off: counts are shown, never classified."""
    return report_data(
        [draw(date(2025, 10, 1), 4), draw(date(2025, 10, 22), 12)], cancer_type="lung"
    )


def no_draws() -> ReportData:
    therapy = line(1, date(2025, 11, 3), "Docetaxel")
    cycles = tuple(cycles_of(therapy, 3, every=21, today=GENERATED_AT.date()))
    return report_data([], cancer_type="prostate", lines=(therapy,), cycles=cycles)


@pytest.fixture(scope="module")
def breast() -> ReportData:
    return breast_conversion()


@pytest.fixture(scope="module")
def breast_pdf(breast: ReportData) -> bytes:
    return report_pdf(breast)


@pytest.fixture(scope="module")
def long_pdf() -> bytes:
    return report_pdf(long_history(150))


# --- reading the PDF back -------------------------------------------------

_OBJECT = re.compile(rb"(\d+) 0 obj\n<<((?:(?!endobj).)*?)>>\nstream\n", re.S)
_TEXT_TOKEN = re.compile(rb"/(F\d+) [\d.]+ Tf|\((?:\\.|[^\\)])*\)", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _streams(pdf: bytes) -> dict[int, bytes]:
    streams = {}
    for match in _OBJECT.finditer(pdf):
        start = match.end()
        body = pdf[start : pdf.index(b"\nendstream", start)]
        if b"/FlateDecode" in match.group(2):
            body = zlib.decompress(body)
        streams[int(match.group(1))] = body
    return streams


def _object(pdf: bytes, number: bytes | int) -> bytes:
    found = re.search(rb"\n%d 0 obj\n(.*?)\nendobj" % int(number), pdf, re.S)
    assert found is not None, number
    return found.group(1)


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """A font's ToUnicode map: code -> text (ligature glyphs map to several letters)."""

    def text(hex_: bytes) -> str:
        return bytes.fromhex(hex_.decode()).decode("utf-16-be")

    mapping = {}
    for block in re.findall(rb"beginbfchar\n(.*?)endbfchar", cmap, re.S):
        for code, target in re.findall(rb"<([0-9a-f]+)> <([0-9a-f]+)>", block, re.I):
            mapping[int(code, 16)] = text(target)
    for block in re.findall(rb"beginbfrange\n(.*?)endbfrange", cmap, re.S):
        for low, high, targets in re.findall(rb"<(\w+)> <(\w+)> (\[.*?\]|<\w+>)", block):
            codes = range(int(low, 16), int(high, 16) + 1)
            if targets.startswith(b"["):
                values = [text(t) for t in re.findall(rb"<(\w+)>", targets)]
            else:
                first = int(targets[1:-1], 16)
                values = [chr(first + i) for i in range(len(codes))]
            mapping.update(zip(codes, values, strict=True))
    return mapping


def _fonts(pdf: bytes, streams: dict[int, bytes]) -> dict[bytes, dict[int, str]]:
    font_dict = re.search(rb"/Font (\d+) 0 R", pdf)
    assert font_dict is not None
    fonts = {}
    for name, number in re.findall(rb"/(F\d+) (\d+) 0 R", _object(pdf, font_dict.group(1))):
        cmap = re.search(rb"/ToUnicode (\d+) 0 R", _object(pdf, number))
        fonts[name] = _to_unicode(streams[int(cmap.group(1))]) if cmap else {}
    return fonts


def _unescape(literal: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        char = match.group(1)
        if char[:1].isdigit():
            return bytes([int(char, 8)])
        return _ESCAPES.get(char, char)

    return re.sub(rb"\\([0-7]{1,3}|.)", one, literal[1:-1], flags=re.S)


def _decode(block: bytes, fonts: dict[bytes, dict[int, str]]) -> str:
    """The text of one BT ... ET block: two-byte codes mapped through the font's ToUnicode."""
    result, mapping = [], {}
    for token in _TEXT_TOKEN.finditer(block):
        if token.group(1):
            mapping = fonts[token.group(1)]
            continue
        raw = _unescape(token.group(0))
        codes = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        result += [mapping.get(code, chr(code)) for code in codes]
    return "".join(result)


def page_texts(pdf: bytes) -> list[str]:
    """The text of each page, one line per text object, in page order."""
    streams = _streams(pdf)
    fonts = _fonts(pdf, streams)
    kids = re.search(rb"/Type /Pages\s+/Kids \[(.*?)\]", pdf, re.S)
    assert kids is not None
    texts = []
    for page_id in re.findall(rb"(\d+) 0 R", kids.group(1)):
        contents = re.search(rb"/Contents (\d+) 0 R", _object(pdf, page_id))
        assert contents is not None
        blocks = re.findall(rb"\nBT\n(.*?)\nET\n", streams[int(contents.group(1))], re.S)
        texts.append("\n".join(_decode(block, fonts) for block in blocks))
    return texts


def placed_texts(pdf: bytes) -> list[tuple[int, float, float, float, bool, str]]:
    """(page, x, y, size, bold, text) of each text object; x, y in points from bottom left."""
    streams = _streams(pdf)
    fonts = _fonts(pdf, streams)
    kids = re.search(rb"/Type /Pages\s+/Kids \[(.*?)\]", pdf, re.S)
    assert kids is not None
    placed = []
    for index, page_id in enumerate(re.findall(rb"(\d+) 0 R", kids.group(1))):
        contents = re.search(rb"/Contents (\d+) 0 R", _object(pdf, page_id))
        assert contents is not None
        for matrix, block in _PLACED.findall(streams[int(contents.group(1))]):
            x, y = (float(v) for v in matrix.split()[4:6])
            font = re.search(rb"/(F\d+) ([\d.]+) Tf", block)
            assert font is not None
            bold = b"Bold" in _object(pdf, _font_numbers(pdf)[font.group(1)])
            size = float(font.group(2))
            placed.append((index, x, y, size, bold, _decode(block, fonts)))
    return placed


def _font_numbers(pdf: bytes) -> dict[bytes, int]:
    font_dict = re.search(rb"/Font (\d+) 0 R", pdf)
    assert font_dict is not None
    found = re.findall(rb"/(F\d+) (\d+) 0 R", _object(pdf, font_dict.group(1)))
    return {name: int(number) for name, number in found}


_PLACED = re.compile(rb"\n((?:-?[\d.]+ ){6})cm\nBT\n(.*?)\nET\n", re.S)
A4_WIDTH_PT, A4_HEIGHT_PT = 595.44, 841.68


def text_width(text: str, size: float, *, bold: bool) -> float:
    font = FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal", size=size)
    return text_to_path.get_text_width_height_descent(text, font, ismath=False)[0]


def text_of(pdf: bytes) -> str:
    """All pages' text with whitespace collapsed, so wrapped sentences read whole."""
    return " ".join(" ".join(page_texts(pdf)).split())


def flat(text: str) -> str:
    return " ".join(text.split())


def shown_codes(data: ReportData) -> set[str]:
    """The flags of the results and of the upcoming and given cycles (not cancelled ones)."""
    codes = {flag.code for a in data.assessments for flag in a.flags}
    evaluated = [c for _, cycle, c in data.cycles if c is not None and cycle.status != "cancelled"]
    return codes | {f.code for c in evaluated for f in c.flags}


def between(text: str, start: str, end: str) -> str:
    """The part of `text` from `start` up to the next `end` after it."""
    first = text.index(start)
    return text[first : text.index(end, first + len(start))]


# --- the file -------------------------------------------------------------


def test_the_report_is_a_whole_pdf_file(breast_pdf: bytes) -> None:
    assert breast_pdf.startswith(b"%PDF-")
    assert breast_pdf.rstrip().endswith(b"%%EOF")


def test_every_page_is_a4_portrait(breast_pdf: bytes) -> None:
    boxes = re.findall(rb"/MediaBox \[ ([\d. ]+) \]", breast_pdf)

    assert boxes
    assert set(boxes) == {b"0 0 595.44 841.68"}


def test_the_text_is_real_text_in_embedded_truetype_fonts(breast_pdf: bytes) -> None:
    assert b"/FontFile2" in breast_pdf  # Type 42: extractable, searchable
    assert b"/Subtype /Type3" not in breast_pdf


def test_the_chart_is_drawn_as_vectors_with_its_text(breast_pdf: bytes) -> None:
    assert b"/Subtype /Image" not in breast_pdf
    assert "CTCs per 7.5 mL" in page_texts(breast_pdf)[0]


def test_the_same_data_gives_the_same_bytes(breast: ReportData, breast_pdf: bytes) -> None:
    assert report_pdf(breast) == breast_pdf


def test_it_leaves_the_callers_matplotlib_settings_alone(breast: ReportData) -> None:
    before = dict(matplotlib.rcParams)

    report_pdf(breast)

    assert dict(matplotlib.rcParams) == before


def test_a_sample_report_stays_small(breast_pdf: bytes) -> None:
    assert len(breast_pdf) < 300_000


# --- pages ----------------------------------------------------------------


def test_the_sample_has_five_pages(breast_pdf: bytes) -> None:
    # Five since days carry their weekday ("Mon 24 Nov 2025"): the wider day columns
    # make the cycles table taller, and the flags' glossary ends on a page of its own.
    pages = page_texts(breast_pdf)

    assert len(pages) == 5
    assert len(re.findall(rb"/Type /Page\b", breast_pdf)) == 5


def test_every_page_names_the_patient_and_who_generated_it(breast_pdf: bytes) -> None:
    pages = page_texts(breast_pdf)

    for number, text in enumerate(pages, start=1):
        assert "Jane Doe" in text
        assert "MRN MRN-004711" in text
        assert "born Mon 20 Nov 1961" in text
        footer = (
            f"Generated 20 Nov 2025 14:05 (Europe/London) by nurse.lee · "
            f"page {number} of {len(pages)}"
        )
        assert footer in text
        assert "CTC counts supplement imaging; they never replace it." in text


def test_a_long_history_continues_the_draws_table_with_its_header(long_pdf: bytes) -> None:
    pages = page_texts(long_pdf)
    continued = [text for text in pages if "CTC draws (oldest first) (continued)" in text]

    assert len(continued) >= 3
    for text in continued:
        assert text.index("Drawn (local)") < text.index("Flags and notes")
    assert len(pages) == len(re.findall(rb"/Type /Page\b", long_pdf))


def test_a_long_history_lists_every_draw_once(long_pdf: bytes) -> None:
    data = long_history(150)
    text = "\n".join(page_texts(long_pdf))

    for a in data.assessments:
        shown = re.escape(wording.time_text(datetime.combine(a.draw.drawn_on, time(9, 30))))
        assert len(re.findall(rf"(?<!\d){shown}", text)) == 1


# --- page 1 -----------------------------------------------------------------


def test_page_one_has_the_patient_block(breast_pdf: bytes) -> None:
    first = flat(page_texts(breast_pdf)[0])

    assert "CTC report" in first
    assert "Date of birth Mon 20 Nov 1961 (age 64)" in first
    assert "Sex Female" in first
    assert "Cancer type Breast" in first
    assert "Oncologist Dr Amara Okafor" in first
    assert "5 or more CTC per 7.5 mL is unfavourable; fewer than 5 is favourable" in first


def test_the_age_is_the_age_on_the_day_the_report_is_generated(breast: ReportData) -> None:
    day_before_birthday = replace(breast, birth_date=date(1961, 11, 21))

    first = flat(page_texts(report_pdf(day_before_birthday))[0])

    assert "Tue 21 Nov 1961 (age 63)" in first


def test_the_summary_gives_the_latest_evaluable_count(breast_pdf: bytes) -> None:
    first = flat(page_texts(breast_pdf)[0])

    assert (
        "Latest evaluable count: 1 CTC/7.5 mL on Thu 23 Oct 2025, favourable; "
        "95% interval 0.0 to 5.6." in first
    )
    assert "Draws: 13 tubes recorded, 11 evaluable samples; 1 entered in error" in first
    # Delayed from 17 Nov: its window opened a week before the day first planned.
    assert (
        "Upcoming L2 C6 (day 1 Mon 24 Nov 2025, delayed): Draw due: no CTC result yet in the "
        "window Mon 10 Nov 2025 to Mon 24 Nov 2025; draw by Fri 21 Nov 2025" in first
    )
    assert "a pre-dose draw on day 1 still counts; not evaluable (review)." in first
    assert "Upcoming L2 C7 (day 1 Mon 8 Dec 2025, planned): Nothing due yet" in first


def test_all_text_is_inside_15_mm_margins_and_readable(long_pdf: bytes) -> None:
    """So nothing is cut when A4 is printed on US Letter, and all of it can be read."""
    margin = 15 / 25.4 * 72
    texts = [t for t in placed_texts(long_pdf) if t[-1].strip()]

    assert len(texts) > 1000
    for page, x, y, size, bold, text in texts:
        right = x + text_width(text, size, bold=bold)
        assert margin - 0.5 <= x and right <= A4_WIDTH_PT - margin + 0.5, text
        assert margin <= y <= A4_HEIGHT_PT - margin, text
        # Page 1 holds the chart, whose label sizes are charts.py's (some below 8 pt).
        assert page == 0 or size >= 8, text


A_YEAR = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
EVERY_DAY = [wording.date_text(d) for d in A_YEAR]
EVERY_TIME = [wording.time_text(datetime.combine(d, time(23, 58))) for d in A_YEAR]


@pytest.mark.parametrize(
    ("columns", "title", "texts"),
    [
        (report_tables.CYCLE_COLUMNS, "Day 1", EVERY_DAY),
        (report_tables.CYCLE_COLUMNS, "Given", EVERY_DAY),
        (report_tables.IMAGING_COLUMNS, "Date", EVERY_DAY),
        (report_tables.DRAW_COLUMNS, "Drawn (local)", EVERY_TIME),
    ],
)
def test_every_day_and_time_fits_its_column_on_one_line(
    columns: tuple[layout.Column, ...], title: str, texts: list[str]
) -> None:
    (column,) = [c for c in columns if c.title == title]
    widest = max(layout.text_width(t, layout.TABLE_PT) for t in texts)
    assert column.width - 2 * layout.CELL_PAD_X >= widest


def test_long_names_and_notes_wrap_inside_the_margins(breast: ReportData) -> None:
    margin = 15 / 25.4 * 72
    first_id = breast.assessments[0].draw.id
    assert first_id is not None
    data = replace(
        breast,
        patient_name="Maria-Theresa Alexandra Konstantinopoulou-Vanderbilt de la Fontaine",
        oncologist="Professor Dr Bartholomew Featherstonehaugh-Cholmondeley",
        comments={first_id: "haemolysed sample; redrawn " * 300},
    )

    pdf = report_pdf(data)
    texts = placed_texts(pdf)

    for page, x, _, size, bold, text in texts:
        if page > 0:  # the chart's own labels are charts.py's business
            assert margin - 0.5 <= x <= x + text_width(text, size, bold=bold) <= 553.4, text
    assert "… (see the record)" in text_of(pdf)
    assert "Konstantinopoulou-Vanderbilt" in page_texts(pdf)[2]


def test_every_flag_code_has_a_word_its_severities_and_an_explanation(breast: ReportData) -> None:
    for code in rules.FlagCode:
        assert FLAG_WORDS[code]
        assert FLAG_SEVERITIES[code]
        assert flag_explanation(code, breast)


def test_the_severities_listed_are_those_the_rules_give() -> None:
    """Over varied series, every flag's severity is one the guide lists for its code,
    and the category flags are seen both high and review, as listed."""
    series = [
        breast_conversion(),
        long_history(150),
        doxorubicin_series(),
        pooled_series(),
        censored_series(),
        report_data([draw(date(2025, 9, 3), 1), draw(date(2025, 10, 1), 5)]),
    ]
    seen: dict[str, set[str]] = {}
    for data in series:
        cycles = [c for _, cycle, c in data.cycles if c is not None and cycle.status != "cancelled"]
        flags = [f for a in data.assessments for f in a.flags]
        for flag in flags + [f for c in cycles for f in c.flags]:
            seen.setdefault(flag.code, set()).add(flag.severity.value)

    for code, severities in seen.items():
        assert severities <= set(FLAG_SEVERITIES[code].split(" or ")), code
    assert seen["conversion_to_unfavourable"] == {"high", "review"}
    assert seen["persistent_unfavourable"] == {"high", "review"}


def test_the_guide_gives_each_flag_shown_with_its_possible_severities(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    assert "conversion to unfavourable conversion_to_unfavourable (high or review)" in text
    assert "unfavourable at baseline baseline_unfavourable (review)" in text
    assert "conversion to favourable conversion_to_favourable (info)" in text
    assert "Severity: high when a sample is clearly on its side of the cut-off" in text


def test_the_summary_names_the_next_three_upcoming_cycles() -> None:
    therapy = line(1, date(2025, 11, 3), "Docetaxel")
    cycles = tuple(cycles_of(therapy, 7, every=21, today=GENERATED_AT.date()))

    first = flat(page_texts(report_pdf(report_data([], lines=(therapy,), cycles=cycles)))[0])

    # On 20 Nov the window of C2 (24 Nov) is open; that of C3 (15 Dec) is not.
    assert "Upcoming L1 C2 (day 1 Mon 24 Nov 2025, planned): Draw due: no CTC result yet" in first
    assert (
        "Upcoming L1 C3 (day 1 Mon 15 Dec 2025, planned): Nothing due yet: the draw window "
        "opens Mon 8 Dec 2025." in first
    )
    assert "missing pre-cycle draw" not in first
    assert "Upcoming L1 C4" in first
    assert "Upcoming L1 C5" not in first
    assert "3 more upcoming cycles are in the cycles table." in first


# --- tables -----------------------------------------------------------------


def test_the_draws_table_shows_each_value(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    row = "29 Jul 2025 09:30 CS25-01008 9 in 5 mL 13.5 6.1 to 25.7 unfavourable"
    assert row in text
    assert "2 May 2025 09:30 CS25-01004 0 in 7.5 mL none detected 0.0 to 3.7 favourable" in text
    assert "1 May 2025 09:30 CS25-01003 rejected — — — not evaluable" in text
    assert "Note: tube older than 96 h on arrival" in text


def test_times_are_shown_in_the_clinic_time_zone(breast: ReportData) -> None:
    summer = draw(date(2025, 7, 10), 3)
    in_utc = replace(summer, drawn_at=datetime(2025, 7, 10, 7, 45, tzinfo=UTC))
    assessments = rules.assess_draws([in_utc], [], [], cancer_type="breast", cutoff=5)
    data = replace(
        breast,
        assessments=assessments,
        generated_at=datetime(2025, 7, 11, 12, 0, tzinfo=UTC),
    )

    text = text_of(report_pdf(data))

    assert "10 Jul 2025 08:45" in text  # BST, UTC+1
    assert "Generated 11 Jul 2025 13:00 (Europe/London)" in text


def test_a_draw_entered_in_error_is_listed_with_its_reason_and_not_assessed(
    breast_pdf: bytes,
) -> None:
    text = text_of(breast_pdf)

    assert "13 Jun 2025 08:15 90 cells — — — ENTERED IN ERROR: result belongs to another" in text
    assert "ENTERED IN ERROR: result belongs to another patient" in text


def test_the_cycles_table_shows_what_stood_before_each_cycle(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    assert (
        "L1 Paclitaxel weekly C2 Mon 24 Mar 2025 Mon 24 Mar 2025 given conversion to favourable "
        "(info) "
        "from the sample of Thu 20 Mar 2025; window Mon 17 Mar 2025 to Mon 24 Mar 2025" in text
    )
    assert (
        "C3 Mon 14 Apr 2025 Mon 14 Apr 2025 given no flags from the sample of Thu 10 Apr 2025"
        in text
    )
    assert "C7 Mon 7 Jul 2025 — cancelled: patient choice after cycle 6 —" in text
    # A high flag that nobody acknowledged says so.
    assert (
        "C6 Mon 16 Jun 2025 Mon 16 Jun 2025 given conversion to unfavourable (high), rise beyond "
        "counting "
        "noise (review) from the sample of Thu 12 Jun 2025; window Mon 9 Jun 2025 to Mon 16 Jun "
        "2025 "
        "not acknowledged" in text
    )
    assert (
        "C6 Mon 24 Nov 2025 — delayed: neutropenia, grade 3 Draw due: no CTC result yet in the "
        "window Mon 10 Nov 2025 to Mon 24 Nov 2025" in text
    )
    assert "counts not evaluable (review) window Mon 10 Nov 2025 to Mon 24 Nov 2025" in text


def test_a_given_cycle_without_a_pre_cycle_result_says_so(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    # L2 C4: no sample between 29 Sep and 6 Oct, given all the same.
    assert (
        "C4 Mon 6 Oct 2025 Mon 6 Oct 2025 given given with no pre-cycle result missing pre-cycle "
        "draw (review) window Mon 29 Sep 2025 to Mon 6 Oct 2025 not acknowledged" in text
    )


def test_a_cycle_whose_window_has_not_opened_has_no_flag(breast_pdf: bytes) -> None:
    row = between(text_of(breast_pdf), "C7 Mon 8 Dec 2025 — planned", "Imaging")

    assert (
        "Nothing due yet: the draw window opens Mon 1 Dec 2025 window Mon 1 Dec 2025 to Mon 8 "
        "Dec 2025" in row
    )
    for severity in ("(high)", "(review)", "(info)"):
        assert severity not in row
    assert "acknowledged" not in row  # nothing to acknowledge


def test_a_cancelled_cycles_assessment_is_never_shown(
    breast: ReportData, breast_pdf: bytes
) -> None:
    """The view passes an assessment for every cycle: a cancelled cycle's is not read."""
    without = replace(
        breast,
        cycles=[(ln, c, None if c.status == "cancelled" else a) for ln, c, a in breast.cycles],
    )

    assert any(c.status == "cancelled" for _, c, _ in breast.cycles)
    assert report_pdf(without) == breast_pdf


def test_acknowledgements_are_shown_by_whom_and_when(breast: ReportData) -> None:
    sample = next(a for a in breast.assessments if a.draw.drawn_on == date(2025, 6, 12))
    given = next(c for _, c, _ in breast.cycles if c.scheduled_date == date(2025, 10, 6))
    assert sample.draw.id is not None
    data = replace(
        breast,
        result_acknowledged={
            sample.draw.id: Acknowledged("Dr Amara Okafor", datetime(2025, 6, 13, 9, 0, tzinfo=UTC))
        },
        cycle_acknowledged={
            given.id: Acknowledged("nurse.lee", datetime(2025, 10, 7, 16, 30, tzinfo=UTC))
        },
    )

    text = text_of(report_pdf(data))

    # In the clinic's time: 10:00 and 17:30 in London (BST).
    row = between(text, "12 Jun 2025 09:30", "ENTERED IN ERROR")
    assert "acknowledged by Dr Amara Okafor on 13 Jun 2025 10:00" in row
    assert "not acknowledged" not in row
    assert (
        "given with no pre-cycle result missing pre-cycle draw (review) window Mon 29 Sep 2025 to "
        "Mon 6 Oct 2025 acknowledged by nurse.lee on 7 Oct 2025 17:30" in text
    )


def test_the_imaging_table_spells_out_the_recist_codes_shown(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    assert "Mon 30 Jun 2025 Bone scan SD" in text
    legend = (
        "RECIST 1.1 codes: PR (partial response); SD (stable disease); PD (progressive disease)."
    )
    assert legend in text
    assert "CR (complete response)" not in text


# --- samples, lower bounds and the chance --------------------------------------


def pooled_series() -> ReportData:
    """Two 7.5 mL tubes drawn together (4 and 6 cells) and a rejected tube beside them."""
    before = draw(date(2025, 9, 3), 2)
    tubes = [draw(date(2025, 10, 1), 4), draw(date(2025, 10, 1), 6)]
    rejected = draw(date(2025, 10, 1), status="rejected")
    draws = [before, *tubes, rejected]
    accessions = {d.id: f"CS25-2{i}" for i, d in enumerate(draws) if d.id}
    return report_data(draws, accessions=accessions)


def test_tubes_drawn_together_are_one_sample_shown_once() -> None:
    text = text_of(report_pdf(pooled_series()))

    # 10 cells in 15 mL: 5 per 7.5 mL, its interval and chance those of the sample.
    row = (
        "1 Oct 2025 09:30 CS25-21 CS25-22 4 in 7.5 mL 6 in 7.5 mL 2 tubes pooled 5 2.3 to 9.2 "
        "unfavourable conversion to unfavourable (review) chance that the true count is at or "
        "above the cut-off: about 52%"
    )
    assert text.count(row) == 1
    assert text.count("4 in 7.5 mL") == 1 and text.count("6 in 7.5 mL") == 1
    assert "Draws: 4 tubes recorded, 2 evaluable samples (1 of them pooled" in text
    assert "Latest evaluable count: 5 CTC/7.5 mL (2 tubes pooled) on Wed 1 Oct 2025" in text


def test_a_rejected_tube_beside_a_sample_refers_to_it_and_has_no_flag() -> None:
    data = pooled_series()

    text = text_of(report_pdf(data))

    assert "1 Oct 2025 09:30 CS25-23 rejected — — — with the sample of 09:30" in text
    assert "not evaluable (review)" not in text
    assert "not_evaluable" not in shown_codes(data)


def censored_series() -> ReportData:
    return report_data([draw(date(2025, 9, 3), 2), draw(date(2025, 10, 1), 1000, more_than=True)])


def test_a_count_reported_as_more_than_prints_as_a_lower_bound() -> None:
    text = text_of(report_pdf(censored_series()))

    assert (
        "Latest evaluable count: > 1000 CTC/7.5 mL on Wed 1 Oct 2025, unfavourable; "
        "95% interval at least 938.9." in text
    )
    row = "1 Oct 2025 09:30 — > 1,000 in 7.5 mL > 1000 at least 938.9 unfavourable"
    assert row + " conversion to unfavourable (high)" in text
    assert "More than a number: a count reported as more than a number" in text
    # Always unfavourable and certain: no chance is shown for it.
    assert "about 100%" not in text


def test_a_sample_near_the_cut_off_gets_a_review_flag_and_its_chance() -> None:
    data = report_data([draw(date(2025, 9, 3), 1), draw(date(2025, 10, 1), 5)])

    text = text_of(report_pdf(data))

    row = between(text, "1 Oct 2025 09:30", "Treatment cycles")
    assert "conversion to unfavourable (review)" in row
    assert "chance that the true count is at or above the cut-off: about 53%" in row
    assert "not acknowledged" in row
    assert "The chance: near the cut-off" in text


def test_the_chance_is_shown_only_where_it_is_worth_showing(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    # 3 cells (19%) and 4 cells (35%) are near the cut-off; 9 cells (95.3%) is clear.
    assert "about 19%" in between(text, "20 Mar 2025 09:30", "10 Apr 2025 09:30")
    assert "about 35%" in between(text, "21 Aug 2025 09:30", "11 Sep 2025 09:30")
    assert "chance" not in between(text, "12 Jun 2025 09:30", "ENTERED IN ERROR")
    assert "chance" not in between(text, "10 Apr 2025 09:30", "1 May 2025 09:30")  # 1 cell: 2%


# --- how to read it -----------------------------------------------------------


def test_it_explains_the_inclusive_cut_off(breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)

    assert "for breast cancer, 5 or more CTC per 7.5 mL is unfavourable" in text
    assert "The cut-off is inclusive: exactly 5 is unfavourable." in text
    assert "95% interval: the exact (Garwood) Poisson interval" in text
    assert "they never recommend a treatment" in text
    assert "CTC counts are prognostic" in text


def test_it_explains_the_colorectal_cut_off_of_three() -> None:
    text = text_of(report_pdf(doxorubicin_series()))

    assert "for colorectal cancer, 3 or more CTC per 7.5 mL is unfavourable" in text
    assert "exactly 3 is unfavourable" in text


def test_it_explains_each_flag_shown_and_no_other(breast: ReportData, breast_pdf: bytes) -> None:
    text = text_of(breast_pdf)
    shown = shown_codes(breast)

    assert shown == {
        "baseline_unfavourable",
        "conversion_to_unfavourable",
        "persistent_unfavourable",
        "conversion_to_favourable",
        "rise_beyond_noise",
        "non_standard_volume",
        "not_evaluable",
        "missing_pre_cycle_draw",
    }
    for code in rules.FlagCode:
        explained = flat(flag_explanation(code, breast)) in text
        assert explained == (code in shown), code


def test_it_explains_the_doxorubicin_window_when_a_draw_has_it() -> None:
    data = doxorubicin_series()

    text = text_of(report_pdf(data))

    assert "doxorubicin_window" in shown_codes(data)
    assert flat(flag_explanation("doxorubicin_window", data)) in text
    assert "4 Sep 2025 09:30 — 2 in 7.5 mL 2 0.2 to 7.3 favourable doxorubicin window" in text


def test_a_cancer_type_without_a_cut_off_is_never_classified() -> None:
    data = unclassifiable()

    text = text_of(report_pdf(data))

    assert "no cut-off is set for lung" in text
    assert "not classified" in text
    assert flat(flag_explanation("no_cutoff", data)) in text
    assert " favourable " not in text.replace("as favourable or", "")


# --- words ------------------------------------------------------------------


@pytest.mark.parametrize("build", [breast_conversion, doxorubicin_series, unclassifiable, no_draws])
def test_forbidden_words_never_appear(build: Callable[[], ReportData]) -> None:
    text = text_of(report_pdf(build())).lower()

    for word in FORBIDDEN:
        assert word not in text


def test_forbidden_words_never_appear_in_a_long_history(long_pdf: bytes) -> None:
    text = text_of(long_pdf).lower()

    for word in FORBIDDEN:
        assert word not in text


# --- edge cases -------------------------------------------------------------


def test_a_patient_with_no_draws_gets_a_valid_report_that_says_so() -> None:
    pdf = report_pdf(no_draws())
    pages = page_texts(pdf)

    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert "No CTC draws recorded." in pages[0]
    assert "No CTC draws recorded." in pages[1]
    text = text_of(pdf)
    # C1 was given with no pre-cycle result; C2's window is open, C3's not yet.
    assert "C1 Mon 3 Nov 2025 Mon 3 Nov 2025 given given with no pre-cycle result" in text
    assert "C2 Mon 24 Nov 2025 — planned Draw due: no CTC result yet" in text
    assert "C3 Mon 15 Dec 2025 — planned Nothing due yet" in text
    # The one flag shown (C1's missing draw) is explained, and no other.
    assert flat(flag_explanation("missing_pre_cycle_draw", no_draws())) in text
    assert flat(flag_explanation("baseline_unfavourable", no_draws())) not in text


def test_a_naive_generation_time_is_refused(breast: ReportData) -> None:
    naive = replace(breast, generated_at=datetime(2025, 11, 20, 14, 5))  # noqa: DTZ001

    with pytest.raises(ValueError, match="generated_at"):
        report_pdf(naive)


def test_text_is_never_read_as_mathtext(breast: ReportData) -> None:
    draw_id = breast.assessments[0].draw.id
    assert draw_id is not None
    data = replace(breast, comments={draw_id: "invoice $12 and $15 paid"})

    text = text_of(report_pdf(data))

    assert "Note: invoice $12 and $15 paid" in text


def test_the_summary_gives_the_latest_imaging_and_the_imaging_table_keeps_notes(
    breast: ReportData,
) -> None:
    imaging = (
        chart_data.ImagingPoint(date(2025, 4, 30), "CT", "PR"),
        chart_data.ImagingPoint(date(2025, 9, 29), "CT", "SD", "Liver lesions slightly smaller"),
    )

    text = text_of(report_pdf(replace(breast, imaging=imaging)))

    assert (
        "Latest imaging: Mon 29 Sep 2025, CT: SD (stable disease) (Liver lesions slightly smaller)."
        in text
    )
    assert "Mon 29 Sep 2025 CT SD Liver lesions slightly smaller" in text
    assert "Wed 30 Apr 2025 CT PR —" in text


if __name__ == "__main__":
    # Rewrites the sample in docs/ from the series above:
    #   DEBUG=True PYTHONPATH=. .venv/bin/python tests/reports/test_report.py
    #   pdftoppm -r 60 -png -f 1 -l 2 docs/report-sample.pdf /tmp/p  (then copy to docs/)

    sample = ROOT / "docs" / "report-sample.pdf"
    sample.write_bytes(report_pdf(breast_conversion()))
    print(f"wrote {sample}")
