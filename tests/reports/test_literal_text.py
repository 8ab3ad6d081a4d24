"""Text from the record is drawn literally in the chart and the report.

matplotlib reads "$...$" in a label as mathematics: a "$" in a regimen or a
comment must stay a "$", not break the drawing (a 500) or turn into symbols.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patients.reports import chart_data, charts
from patients.reports.ctc_report import ReportData, report_pdf
from tests.fuzzing import HOSTILE_STRINGS, fuzz_settings
from tests.reports.test_report import (
    GENERATED_AT,
    cycles_of,
    draw,
    line,
    report_data,
    text_of,
)

SVG = "{http://www.w3.org/2000/svg}"

# Each breaks matplotlib's mathtext parser, or would be drawn as something else.
MATH = ("$x$", r"$\frac{1}{0}$", "$$", "$", r"a\b", "_^", r"$\alpha^$", "50$ copay")


def _record(regimen: str, note: str, *, name: str = "Jane $Doe$") -> ReportData:
    """A patient whose every free text from the record is `regimen` or `note`."""
    today = GENERATED_AT.date()
    therapy = line(1, date(2025, 3, 3), regimen)
    cycles = cycles_of(therapy, 3, every=21, today=today)
    delayed = replace(
        cycles[2], scheduled_date=date(2025, 12, 1), given_date=None, status="delayed"
    )
    draws = [draw(date(2025, 2, 26), 14), draw(date(2025, 3, 20), 3), draw(date(2025, 4, 10), 1)]
    data = report_data(
        draws,
        lines=(therapy,),
        cycles=(*cycles[:2], delayed),
        imaging=(chart_data.ImagingPoint(date(2025, 4, 30), note, note),),
        accessions={d.id: note for d in draws if d.id},
        comments={d.id: note for d in draws if d.id},
        cycle_reasons={delayed.id: note},
    )
    return replace(data, patient_name=name, mrn=note, oncologist=note, generated_by=note)


@pytest.mark.parametrize("text", MATH)
def test_the_chart_draws_record_text_literally(text: str) -> None:
    data = _record(f"Regimen {text}", f"CT {text}").chart

    # Without the comments matplotlib writes before each text, which always hold its source.
    svg = re.sub(r"<!--.*?-->", "", charts.trend_svg(data).decode(), flags=re.S)

    assert f"L1 Regimen {text}" in svg
    assert f"CT {text}: CT {text}" in svg
    assert charts.trend_png(data).startswith(b"\x89PNG")


@pytest.mark.parametrize("text", MATH)
def test_the_report_prints_record_text_literally(text: str) -> None:
    pdf = text_of(report_pdf(_record(f"Regimen {text}", f"note {text}")))

    assert "Jane $Doe$" in pdf
    assert f"L1 Regimen {text}" in pdf
    assert f"note {text}: note {text}" in pdf  # the chart's imaging label


def _storable(text: str) -> bool:
    """A lone surrogate is not UTF-8: no form, import or database hands one to a report."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# Cut to 200 characters: a 10,000-character word takes the report's line breaking
# about a minute, which is a matter of its own (the forms cap the fields' length).
_HOSTILE = (
    st.sampled_from([s[:200] for s in HOSTILE_STRINGS if _storable(s)])
    | st.sampled_from(MATH)
    | st.text(max_size=60)
)


# Characters no installed font has are drawn as boxes, with a warning each: expected here.
@pytest.mark.filterwarnings("ignore:(?s)Glyph .* missing from font:UserWarning")
@fuzz_settings(max_examples=30)
@given(regimen=_HOSTILE, note=_HOSTILE, name=_HOSTILE)
def test_hostile_record_text_never_breaks_the_chart_or_the_report(
    regimen: str, note: str, name: str
) -> None:
    data = _record(regimen, note, name=name)
    identity = chart_data.ChartIdentity(name, note, date(1960, 5, 17), GENERATED_AT.date())

    # Well-formed, with a tooltip on every point, downloaded or inline.
    svg = ET.fromstring(charts.trend_svg(data.chart, identity=identity))
    inline = ET.fromstring(charts.trend_svg_inline(data.chart, label=name or "chart"))
    for root in (svg, inline):
        points = [g for g in root.iter(f"{SVG}g") if g.get("class") == "ctc-point"]
        assert len(points) == 3
        assert all(g[0].tag == f"{SVG}title" and g[0].text for g in points)
    assert charts.trend_png(data.chart, identity=identity).startswith(b"\x89PNG")
    assert report_pdf(data).startswith(b"%PDF")
