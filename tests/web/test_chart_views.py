"""/patients/<id>/chart.svg, chart.png and report.pdf."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from matplotlib.image import imread

from patients import services
from patients.models import AccessAction, AccessEvent, TreatmentCycle
from patients.reports import charts
from patients.reports import ctc_report as report
from tests import builders

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def _draw(patient, by, day: int, count: int):
    return services.record_draw(
        patient=patient, by=by, drawn_at=datetime(2026, 1, day, 9, tzinfo=UTC), ctc_count=count
    )


@pytest.mark.parametrize("name", ["chart.svg", "chart.png", "report.pdf"])
def test_it_needs_login_and_a_role(client, outsider, patient, name):
    url = f"/patients/{patient.pk}/{name}"
    assert client.get(url).status_code == 302

    client.force_login(outsider)
    assert client.get(url).status_code == 403


def test_the_svg_shows_the_axis_the_cut_off_and_the_cycles(client, nurse, oncologist, cycle):
    _draw(cycle.therapy_line.patient, oncologist, 2, 3)
    client.force_login(nurse)

    r = client.get(f"/patients/{cycle.therapy_line.patient_id}/chart.svg")

    assert r["Content-Type"] == "image/svg+xml"
    svg = r.content.decode()
    ElementTree.fromstring(r.content)  # well-formed
    assert "CTCs per 7.5 mL" in svg
    assert "Cut-off 5" in svg and "(breast)" in svg
    assert "C1" in svg


def test_the_png_opens_as_an_image(client, nurse, oncologist, patient):
    _draw(patient, oncologist, 2, 7)
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/chart.png")

    assert r["Content-Type"] == "image/png"
    pixels = imread(io.BytesIO(r.content))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300


def test_a_repeat_request_with_the_etag_gets_304(client, nurse, oncologist, patient):
    _draw(patient, oncologist, 2, 7)
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/chart.svg"

    first = client.get(url)
    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first.status_code == 200 and first["ETag"]
    assert again.status_code == 304
    assert again.content == b""


def test_a_new_draw_changes_the_etag_and_the_chart(client, nurse, oncologist, patient):
    _draw(patient, oncologist, 2, 7)
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/chart.svg"
    before = client.get(url)

    _draw(patient, oncologist, 9, 700)
    after = client.get(url, HTTP_IF_NONE_MATCH=before["ETag"])

    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert after.content != before.content


# --- writes that change the chart change its ETag and its cached copy ------------------------


def _acknowledge_the_cycle(patient, oncologist, nurse):
    due = TreatmentCycle.objects.get(therapy_line__patient=patient, number=3)
    services.acknowledge_cycle(cycle=due, by=nurse, note="Oncologist informed")


def _correct_the_count(patient, oncologist, nurse):
    draw = patient.draws.order_by("drawn_at").last()
    services.update_draw(
        draw=draw,
        version=builders.version_of(draw),
        by=oncologist,
        changes={"ctc_count": 2},
        reason="Transcription error",
    )


def _record_imaging(patient, oncologist, nurse):
    services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 2, 20), modality="ct", response="SD"
    )


@pytest.mark.parametrize("write", [_acknowledge_the_cycle, _correct_the_count, _record_imaging])
@pytest.mark.parametrize("name", ["chart.svg", "chart.png"])
def test_a_write_that_changes_the_chart_is_not_answered_from_the_cache(
    client, nurse, oncologist, patient, write, name
):
    """An acknowledgement of a cycle (its sample's points say so), a corrected count, new
    imaging: a client's copy is stale (no 304) and the cached chart is drawn again."""
    line = builders.therapy_line(patient, oncologist, start_date=date(2026, 1, 5))
    builders.cycle(line, oncologist, number=3, scheduled_date=date(2026, 3, 3))
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 2, 1, 9, tzinfo=UTC), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 2, 28, 9, tzinfo=UTC), ctc_count=9)
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/{name}"
    before = client.get(url)
    assert client.get(url, HTTP_IF_NONE_MATCH=before["ETag"]).status_code == 304

    write(patient, oncologist, nurse)
    after = client.get(url, HTTP_IF_NONE_MATCH=before["ETag"])

    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert after.content != before.content


def test_a_cached_chart_is_served_without_rendering(
    client, nurse, oncologist, patient, monkeypatch
):
    _draw(patient, oncologist, 2, 7)
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/chart.svg"
    first = client.get(url)

    def must_not_render(*args, **kwargs):
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(charts, "trend_svg", must_not_render)
    second = client.get(url)

    assert second.content == first.content


def test_a_patient_without_draws_gets_a_chart_that_says_so(client, nurse, patient):
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/chart.svg")

    assert "No CTC draws recorded yet" in r.content.decode()


def test_the_report_is_a_pdf_for_this_user(client, nurse, oncologist, patient):
    _draw(patient, oncologist, 2, 2)
    _draw(patient, oncologist, 23, 9)
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/report.pdf")

    assert r["Content-Type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    assert "MRN" not in r["Content-Disposition"]
    today = timezone.localdate()
    expected = f'attachment; filename="ctc-report-{patient.pk}-{today:%Y-%m-%d}.pdf"'
    assert r["Content-Disposition"] == expected


def test_an_unknown_patient_has_no_chart(client, nurse):
    client.force_login(nurse)

    assert client.get("/patients/999999/chart.svg").status_code == 404


# --- what a cached chart costs -----------------------------------------------------------------
# The session, the user, whether the user has a two-factor device (this nurse has none),
# the user's permissions (its own and its role's, one query), whether a second care team
# exists (the access gate, once a request), the patient with the id of its latest
# acknowledgement (one query: the cache key and the ETag) and the access-log event: the
# log's lock and its last hash (PostgreSQL: one round trip; SQLite: two statements, its
# driver sends one at a time), then the insert. No transaction of the view's own and no
# session write.
CACHED_CHART_QUERIES = 8 if connection.vendor == "postgresql" else 9


def _queries(call) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("name", ["chart.svg", "chart.png"])
def test_a_cached_chart_costs_a_fixed_number_of_queries(client, nurse, oncologist, patient, name):
    for day in range(1, 8):
        _draw(patient, oncologist, day, day)
    client.force_login(nurse)
    url = f"/patients/{patient.pk}/{name}"
    first = client.get(url)

    answers = []
    cached = _queries(lambda: answers.append(client.get(url)))
    not_modified = _queries(
        lambda: answers.append(client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]))
    )

    assert [a.status_code for a in answers] == [200, 304]
    assert answers[0].content == first.content
    assert len(cached) == CACHED_CHART_QUERIES
    assert len(not_modified) == CACHED_CHART_QUERIES
    assert not [q for q in cached + not_modified if "django_session" in q and "UPDATE" in q]
    # Every read is still in the access log, the 304 included.
    targets = AccessEvent.objects.filter(action=AccessAction.CHART, patient=patient).values_list(
        "target", flat=True
    )
    assert sorted(targets) == sorted([name, name, f"{name} (not modified)"])


def test_a_dollar_in_the_record_is_drawn_literally_in_the_chart_and_report(
    client, nurse, oncologist, patient
):
    builders.therapy_line(patient, oncologist, regimen="FOLFOX $x$ 50$$")
    _draw(patient, oncologist, 6, 7)
    client.force_login(nurse)

    svg = client.get(f"/patients/{patient.pk}/chart.svg")
    pdf = client.get(f"/patients/{patient.pk}/report.pdf")

    assert svg.status_code == 200 and pdf.status_code == 200
    assert "L1 FOLFOX $x$ 50$$" in re.sub(r"<!--.*?-->", "", svg.content.decode(), flags=re.S)
    assert pdf.content.startswith(b"%PDF")


def test_a_report_of_more_draws_than_the_limit_is_refused_with_a_way_out(
    client, nurse, oncologist, patient, settings, monkeypatch, caplog
):
    settings.CTCTRACK_REPORT_MAX_DRAWS = 3
    for day in (2, 3, 4, 5):
        _draw(patient, oncologist, day, 2)
    client.force_login(nurse)
    drawn = []
    monkeypatch.setattr(report, "report_pdf", lambda data: drawn.append(data) or b"%PDF-")

    with caplog.at_level("DEBUG"):
        r = client.get(f"/patients/{patient.pk}/report.pdf")

    assert r.status_code == 422
    assert r["Content-Type"].startswith("text/html")
    page = " ".join(r.content.decode().split())
    assert (
        "This patient has 4 draws; the printable report covers at most 3. "
        "Export the draws as CSV instead."
    ) in page
    assert f'href="/patients/{patient.pk}/draws.csv"' in page
    assert drawn == []
    assert patient.mrn not in caplog.text and patient.family_name not in caplog.text


def test_a_report_of_exactly_the_limit_is_printed(client, nurse, oncologist, patient, settings):
    settings.CTCTRACK_REPORT_MAX_DRAWS = 3
    for day in (2, 3, 4):
        _draw(patient, oncologist, day, 2)
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/report.pdf")

    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
