"""The chart on the patient page (inline, with tooltips) and as downloads (named, with
whose chart it is printed on it), the report and the CSV as attachments."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date

import pytest
from django.core.cache import cache
from django.utils import timezone

from patients import services, wording
from patients.reports import charts
from patients.reports.chart_data import ChartIdentity
from tests import builders

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def _points(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "ctc-point"]


def _inline_svg(html: str) -> ET.Element:
    markup = re.search(r"<svg\b.*?</svg>", html, flags=re.S)
    assert markup is not None, "no inline chart on the page"
    return ET.fromstring(markup.group(0))


def test_the_patient_page_embeds_the_chart_with_a_tooltip_and_a_tab_stop_on_every_point(
    client, nurse, oncologist, patient
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 23), ctc_count=9)
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 13), status="rejected")
    client.force_login(nurse)

    html = client.get(f"/patients/{patient.pk}/").content.decode()

    assert f'src="/patients/{patient.pk}/chart.svg"' not in html  # not an <img>
    root = _inline_svg(html)
    points = _points(root)
    assert len(points) == 3
    for point in points:
        assert point.get("tabindex") == "0"
        assert point[0].tag == f"{SVG}title"  # the tooltip, and the point's accessible name
    titles = [point[0].text for point in points]
    assert titles[1].splitlines()[:4] == [
        "23 Jan 2026 09:00",
        "9 CTC counted in 7.5 mL",
        "9 CTC/7.5 mL: unfavourable (cut-off 5)",
        "95% interval 4.1 to 17.1",
    ]
    assert "Converted to unfavourable" in titles[1]
    assert "not evaluable (rejected)" in titles[2]


def test_the_inline_chart_obeys_the_pages_policy_no_inline_style(
    client, nurse, oncologist, patient
):
    """The site's CSP forbids inline style: the chart uses presentation attributes."""
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/")
    root = _inline_svg(r.content.decode())

    assert "'unsafe-inline'" not in r["Content-Security-Policy"]
    assert not [e for e in root.iter() if "style" in e.attrib]
    assert not list(root.iter(f"{SVG}style"))
    assert not list(root.iter(f"{SVG}script"))
    # The colours are still there, as attributes.
    assert any(e.get("fill") == "#b2182b" for e in root.iter())


@pytest.mark.parametrize(
    ("name", "kind", "extension"),
    [
        ("chart.png", "chart", "png"),
        ("chart.svg", "chart", "svg"),
        ("report.pdf", "report", "pdf"),
        ("draws.csv", "draws", "csv"),
    ],
)
def test_downloads_are_attachments_named_by_patient_id_and_day(
    client, oncologist, patient, name, kind, extension
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    client.force_login(oncologist)

    r = client.get(f"/patients/{patient.pk}/{name}")

    today = timezone.localdate()
    expected = f'attachment; filename="ctc-{kind}-{patient.pk}-{today:%Y-%m-%d}.{extension}"'
    assert r.status_code == 200
    assert r["Content-Disposition"] == expected
    assert patient.mrn not in r["Content-Disposition"]
    assert patient.family_name not in r["Content-Disposition"]


def test_the_downloaded_svg_says_whose_chart_it_is_and_when_it_was_made(
    client, nurse, oncologist, patient
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    client.force_login(nurse)

    root = ET.fromstring(client.get(f"/patients/{patient.pk}/chart.svg").content)

    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    today = timezone.localdate()
    identity = next(t for t in texts if "MRN" in t)
    assert patient.name in identity
    assert f"MRN {patient.mrn}" in identity
    assert f"born {wording.date_text(patient.birth_date)}" in identity
    assert f"chart made {today:%a} {today.day} {today:%b %Y}" in identity
    assert len(_points(root)) == 1


def test_the_png_is_drawn_with_the_identity_line():
    """The PNG is rendered from the same figure: its identity line is one of its texts."""
    from tests.reports.test_charts import breast_conversion_data

    identity = ChartIdentity("Doe, Jane", "MRN0001", date(1960, 5, 17), date(2026, 12, 3))
    fig = charts.trend_figure(breast_conversion_data(), identity=identity)

    assert fig.get_suptitle() == (
        "Doe, Jane · MRN MRN0001 · born Tue 17 May 1960 · chart made Thu 3 Dec 2026"
    )
    assert charts.trend_png(breast_conversion_data(), identity=identity).startswith(b"\x89PNG")


def test_an_acknowledgement_changes_the_cached_chart(client, nurse, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    flagged = builders.draw(patient, oncologist, drawn_at=date(2026, 1, 23), ctc_count=9)
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/chart.svg"
    before = client.get(url)

    services.acknowledge_result(draw=flagged, by=nurse, note="Oncologist informed")
    after = client.get(url, HTTP_IF_NONE_MATCH=before["ETag"])
    page = client.get(f"/patients/{patient.pk}/").content.decode()

    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    root = ET.fromstring(after.content)
    titles = [p[0].text for p in _points(root)]
    assert "Flags acknowledged" in titles[1]
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("✓ ↑ conv.") for t in texts)  # marked on the chart itself
    assert any("✓ = flags acknowledged" in t for t in texts)
    assert "Flags acknowledged" in _points(_inline_svg(page))[1][0].text


def test_the_inline_chart_keeps_plain_svg_names_whatever_prefixes_others_register():
    """ElementTree's prefixes are process-wide (a QR code library names the SVG one
    "svg"); an HTML page draws <svg:g> as nothing, so the chart never depends on them."""
    from tests.reports.test_charts import breast_conversion_data

    ET.register_namespace("svg", "http://www.w3.org/2000/svg")
    ET.register_namespace("xl", "http://www.w3.org/1999/xlink")

    markup = charts.trend_svg_inline(breast_conversion_data(), label="CTC trend chart")
    download = charts.trend_svg(breast_conversion_data()).decode()

    assert markup.startswith("<svg ") and "<g " in markup
    assert "svg:" not in markup and "xl:" not in markup and "xlink:" not in markup
    assert "<svg:" not in download and "xlink:href" in download
