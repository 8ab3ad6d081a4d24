"""patients.reports.layout draws a page's text itself, not with a matplotlib Text per cell:
the file must be the one matplotlib's Text would have written, and a long table must not
lay out the same words again in every row.

The reference is the way the layout drew text before: a `Figure.text` per piece of text,
at its baseline, never mathtext.
"""

from __future__ import annotations

import gc
from collections import Counter
from contextlib import nullcontext
from typing import Any, Literal

import pytest
from matplotlib.backends.backend_pdf import RendererPdf
from matplotlib.figure import Figure

from patients.reports import layout
from patients.reports.ctc_report import report_pdf
from tests.reports.test_report import breast_conversion, long_history, page_texts


def _drawn_with_text_artists(
    page: layout.Page,
    x: float,
    y: float,
    s: str,
    style: layout.Style,
    *,
    ha: Literal["left", "right"] = "left",
) -> None:
    page.fig.text(
        x / layout.PAGE_W,
        1 - y / layout.PAGE_H,
        s,
        fontproperties=layout._font(style.size, style.bold, style.italic),
        color=style.colour,
        ha=ha,
        va="baseline",
        parse_math=False,
        usetex=False,
    )


@pytest.fixture(scope="module")
def with_text_artists() -> bytes:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layout.Page, "text", _drawn_with_text_artists)
        return report_pdf(breast_conversion())


def test_the_sample_report_is_the_file_text_artists_write(with_text_artists: bytes) -> None:
    # Same bytes: the same text in the same fonts at the same places, on the same pages.
    pdf = report_pdf(breast_conversion())
    assert page_texts(pdf) == page_texts(with_text_artists)
    assert pdf == with_text_artists


def test_a_right_aligned_text_a_stripe_and_a_rule_are_drawn_as_text_artists_draw_them() -> None:
    def document() -> bytes:
        page = layout.Page(Figure(figsize=(layout.PAGE_W_IN, layout.PAGE_H_IN)))
        page.shade(layout.LEFT, 100, layout.WIDTH, 20, layout.STRIPE_COLOUR)
        page.text(layout.RIGHT, 110, "CTC report — page 1 of 2", layout.FOOTER, ha="right")
        page.text(layout.LEFT, 110, "Doe, Jane · MRN0001", layout.BOLD)
        page.rule(layout.LEFT, layout.RIGHT, 120, colour=layout.RULE_COLOUR)
        page.text(layout.LEFT, 130, "Doe, Jane · MRN0001", layout.BOLD)
        page.text(layout.LEFT, 140, "", layout.BODY)
        return layout.pdf_bytes([page], title="t", rc_lock=nullcontext())

    fast = document()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layout.Page, "text", _drawn_with_text_artists)
        assert fast == document()


def test_each_string_is_laid_out_once_per_font_however_many_rows_repeat_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    laid_out: Counter[tuple[str, float, str, str]] = Counter()
    draw_text = RendererPdf.draw_text

    def counted(
        self: RendererPdf, gc: Any, x: float, y: float, s: str, prop: Any, *a: Any, **k: Any
    ):  # type: ignore[no-untyped-def]
        laid_out[(s, prop.get_size_in_points(), prop.get_weight(), prop.get_style())] += 1
        return draw_text(self, gc, x, y, s, prop, *a, **k)

    monkeypatch.setattr(RendererPdf, "draw_text", counted)
    pdf = report_pdf(long_history(60))
    lines = "\n".join(page_texts(pdf)).splitlines()
    # Cells repeated in many rows, on several pages, each in the one font of its column.
    for cell, font in [
        ("—", ("normal", "normal")),
        ("favourable", ("normal", "normal")),
        ("unfavourable", ("normal", "normal")),
        ("not acknowledged", ("normal", "italic")),
    ]:
        assert lines.count(cell) > 10, cell
        assert laid_out[(cell, layout.TABLE_PT, *font)] == 1, cell


def test_a_files_text_cache_goes_with_the_file() -> None:
    # A web server makes reports for days: what one file laid out must not stay behind.
    gc.collect()
    before = len(layout._PdfTextCache._of_file)
    report_pdf(breast_conversion())
    gc.collect()
    assert len(layout._PdfTextCache._of_file) == before
