"""The patient list and the patient page."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients import services
from patients.demo import FAMILY
from patients.models import Patient
from tests import builders
from tests.plans import Plan

pytestmark = pytest.mark.django_db


def _register(by, i: int):
    """The i-th of a numbered list: MRN L-000, Family000 and so on, as the searches look for."""
    return builders.patient(
        by,
        mrn=f"L-{i:03d}",
        given_name=f"Given{i}",
        family_name=f"Family{i:03d}",
        cancer_type="prostate",
    )


@pytest.mark.parametrize("url", ["/patients/", "/patients/{pk}/"])
def test_anonymous_users_are_sent_to_login_and_outsiders_get_403(client, outsider, patient, url):
    url = url.format(pk=patient.pk)
    assertRedirects(client.get(url), f"/accounts/login/?next={url}", fetch_redirect_response=False)

    client.force_login(outsider)
    assert client.get(url).status_code == 403


def test_the_list_shows_the_latest_category_and_the_next_cycle(
    client, nurse, oncologist, patient, line
):
    builders.cycle(line, oncologist, number=1, scheduled_date=date(2099, 1, 5))
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=7)
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 9), status="failed")
    client.force_login(nurse)

    r = client.get("/patients/")

    assertContains(r, "Doe, Jane")
    assertContains(r, "7 CTC/7.5 mL")
    assertContains(r, "category-unfavourable")
    assertContains(r, "C1 on Mon 5 Jan 2099")


def test_the_list_shows_a_new_count_and_a_correction_at_once(client, nurse, oncologist, patient):
    # The rows' assessments are kept in the cache: every write must reach the list.
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=7)
    client.force_login(nurse)
    assertContains(client.get("/patients/"), "7 CTC/7.5 mL")

    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 23), ctc_count=2)
    assertContains(client.get("/patients/"), "2 CTC/7.5 mL")

    second = patient.draws.get(ctc_count=2)
    services.mark_draw_entered_in_error(
        draw=second,
        version=builders.version_of(second),
        by=oncologist,
        reason="Wrong patient's tube",
    )
    after = client.get("/patients/")
    assertContains(after, "7 CTC/7.5 mL")
    assertNotContains(after, "2 CTC/7.5 mL")


def test_the_list_searches_by_name_or_mrn_and_paginates(client, nurse, oncologist):
    for i in range(30):
        _register(oncologist, i)
    client.force_login(nurse)

    first = client.get("/patients/")
    second = client.get("/patients/", {"page": 2})
    found = client.post("/patients/", {"q": "L-017"}, follow=True)

    assertContains(first, "Page 1 of 2")
    assertContains(second, "Family029")
    assertContains(found, "Family017")
    assertNotContains(found, "Family016")


def test_a_search_never_puts_the_name_in_a_url(client, nurse, oncologist):
    for i in range(30):
        _register(oncologist, i)
    client.force_login(nurse)

    searched = client.post("/patients/", {"q": "Family01"})
    assert searched.status_code == 302 and searched["Location"] == "/patients/"

    found = client.get("/patients/")
    assertContains(found, "10 patients matching “Family01”")
    assertContains(found, "Family019")
    assertNotContains(found, "Family020")
    for link in re.findall(r'href="([^"]*)"', found.content.decode()):
        assert "Family" not in link and "q=" not in link, link
    # The search stays while the nurse pages through it, until they clear it.
    assertContains(client.get("/patients/", {"page": 1}), "matching “Family01”")
    client.post("/patients/", {"q": ""})
    assertContains(client.get("/patients/"), "30 patients.")


def test_the_list_runs_the_same_queries_for_few_or_many_patients(
    client, nurse, oncologist, count_queries, care_teams
):
    def add(first: int, last: int) -> None:
        # A count, then (every other patient) a rejected or a pending tube after it.
        for i in range(first, last):
            patient = _register(oncologist, i)
            builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=i)
            if i % 2:
                status = "rejected" if i % 4 == 1 else "pending"
                builders.draw(patient, oncologist, drawn_at=date(2026, 1, 9), status=status)

    add(0, 3)
    client.force_login(nurse)
    client.get("/patients/")
    few = _cold_and_warm(client, count_queries)
    add(3, 25)

    many = _cold_and_warm(client, count_queries)

    assert few == many


def _cold_and_warm(client, count_queries) -> tuple[int, int]:
    """The list's queries with no patient's assessment in the cache (every row loaded and
    assessed: the most it runs), then again with all of them there."""

    def cold():
        cache.clear()
        return client.get("/patients/")

    return count_queries(cold), count_queries(lambda: client.get("/patients/"))


def test_a_search_runs_the_same_queries_for_few_or_many_matches(
    client, nurse, oncologist, count_queries, care_teams
):
    def add(first: int, last: int) -> None:
        for i in range(first, last):
            patient = _register(oncologist, i)
            builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=i)

    add(0, 3)
    client.force_login(nurse)
    client.post("/patients/", {"q": "Family0"})
    client.get("/patients/")
    few = _cold_and_warm(client, count_queries)
    add(3, 40)  # Family003 to Family039 match too: a full page of 25 and a second one

    many = _cold_and_warm(client, count_queries)

    assertContains(client.get("/patients/"), "40 patients matching “Family0”")
    assert few == many


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm indexes (migration 0019)")
@pytest.mark.parametrize("text", ["quill", "L-01", "rosa quill"])
def test_on_postgresql_a_search_can_be_answered_from_the_trigram_indexes(text):
    """Each word's `icontains` on each column is an expression the trigram indexes hold:
    told not to read the table, PostgreSQL still answers from them (at 100,000 patients
    a search read every patient; bench/results.md)."""
    sql, params = Patient.objects.search(text).order_by().values("pk").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    for column in ("mrn", "given_name", "family_name"):
        assert f"patient_{column}_trgm" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_on_postgresql_a_search_reads_the_patients_it_finds_not_the_clinic(
    client, nurse, oncologist
):
    """The last family name of the alphabet among a clinic's 36. Sorted by name as
    stored, PostgreSQL walked the name index from "A", filtering every patient until 25
    matched (it takes the matches to be spread evenly through the alphabet): at 10,000
    patients a search for "Zhang" read them all, 12.9 ms against 1.8 ms from the trigram
    indexes (bench/README.md). Sorted by the upper-cased names, no index gives the
    order: the matches are found first (by the trigram indexes, or, in a table this
    small, by reading it once), then sorted."""
    template = builders.patient(oncologist)
    fields = {f.attname: getattr(template, f.attname) for f in Patient._meta.concrete_fields}
    del fields["id"]
    Patient.objects.bulk_create(
        Patient(**fields | {"mrn": f"B-{i:05d}", "family_name": FAMILY[i % len(FAMILY)]})
        for i in range(36 * 100)
    )
    matching = Patient.objects.filter(family_name="Zhang").count()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE patients_patient")
    client.force_login(nurse)
    client.post("/patients/", {"q": "zhang"})

    with CaptureQueriesContext(connection) as captured:
        page = client.get("/patients/")

    assertContains(page, f"{matching} patients matching “zhang”")
    (listed,) = [q["sql"] for q in captured.captured_queries if "LIMIT 25" in q["sql"]]
    plan = Plan(listed)
    assert "patient_name" not in {node.get("Index Name") for node in plan.nodes()}, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm indexes (migration 0019)")
def test_on_postgresql_the_search_indexes_keep_no_pending_list():
    """A GIN index's pending list of new entries is read through by every search until
    a VACUUM merges it: 28 ms against 20 ms a search after loading 10,000 patients.
    The trigram indexes take each patient's entries at once (migration 0022)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'patient\\_%%\\_trgm'"
        )
        options = dict(cursor.fetchall())

    assert set(options) == {f"patient_{c}_trgm" for c in ("mrn", "given_name", "family_name")}
    assert all(found and "fastupdate=off" in found for found in options.values()), options


def test_the_patient_page_shows_every_draw_with_values_interval_category_and_flags(
    client, nurse, oncologist, patient, line
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=2)
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 23), ctc_count=9, accession="ACC-9")
    builders.draw(
        patient, oncologist, drawn_at=date(2026, 2, 13), status="rejected", comment="Haemolysed"
    )
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/")

    assertContains(r, "MRN MRN0001")
    assertContains(r, "unfavourable at 5 or more CTC per 7.5 mL")
    assertContains(r, "9 in 7.5 mL")
    assertContains(r, "4.1 to 17.1")
    assertContains(r, "Converted to unfavourable")
    assertContains(r, "Haemolysed")
    assertContains(r, "Not evaluable (rejected")
    assertContains(r, 'class="trend-chart"')  # the chart, inline: its tooltips show
    assertContains(r, "Line 1: Paclitaxel")


def test_nurses_see_no_edit_actions_and_oncologists_do(client, nurse, oncologist, patient, draw):
    client.force_login(nurse)
    as_nurse = client.get(f"/patients/{patient.pk}/")
    client.force_login(oncologist)
    as_oncologist = client.get(f"/patients/{patient.pk}/")

    for link in ["New draw", "Edit patient", "New therapy line", f"/draws/{draw.pk}/edit/"]:
        assertNotContains(as_nurse, link)
        assertContains(as_oncologist, link)


def test_a_draw_entered_in_error_stays_visible_but_struck(client, nurse, oncologist, draw):
    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong patient"
    )
    client.force_login(nurse)

    r = client.get(f"/patients/{draw.patient_id}/")

    assertContains(r, 'class="voided"')
    assertContains(r, "Wrong patient")


def test_the_patient_page_runs_the_same_queries_for_few_or_many_draws(
    client, nurse, oncologist, patient, line, count_queries
):
    for day in range(1, 3):
        builders.draw(patient, oncologist, drawn_at=date(2026, 1, day), ctc_count=day)
    client.force_login(nurse)
    client.get(f"/patients/{patient.pk}/")
    few = count_queries(lambda: client.get(f"/patients/{patient.pk}/"))
    for day in range(3, 28):
        builders.draw(patient, oncologist, drawn_at=date(2026, 1, day), ctc_count=day % 6)
        builders.cycle(line, oncologist, number=day, scheduled_date=date(2026, 2, day))

    many = count_queries(lambda: client.get(f"/patients/{patient.pk}/"))

    assert few == many


def test_an_unknown_patient_is_404(client, nurse):
    client.force_login(nurse)

    assert client.get("/patients/999999/").status_code == 404


# --- rules version 2 on the patient page ---------------------------------------------------


def _rows_by_id(response, kind: str) -> dict[int, str]:
    found = re.findall(rf'(<tr id="{kind}-(\d+)".*?</tr>)', response.content.decode(), flags=re.S)
    return {int(pk): row for row, pk in found}


def test_acknowledging_from_the_patient_page_highlights_the_draw_once_below_the_message(
    client, nurse, oncologist, patient
):
    high = builders.draw(
        patient, oncologist, drawn_at=timezone.localdate() - timedelta(days=2), ctc_count=12
    )
    page = f"/patients/{patient.pk}/"
    client.force_login(nurse)

    r = client.post(
        f"/draws/{high.pk}/acknowledge/", {"note": "Seen", "next": f"{page}#draw-{high.pk}"}
    )
    shown = client.get(r.url)

    assert r.url == page  # no anchor: the page opens at its top, at the message
    assertContains(shown, "Acknowledged the result drawn ")
    assert "just-done" in _rows_by_id(shown, "draw")[high.pk]
    assert "just-done" not in client.get(page).content.decode()  # once


def test_a_saved_draw_cycle_and_imaging_are_highlighted_on_the_page_opened_at_its_top(
    client, oncologist, patient, line
):
    page = f"/patients/{patient.pk}/"
    client.force_login(oncologist)
    drawn = timezone.localtime() - timedelta(days=1)

    saved = client.post(
        f"{page}draws/new/",
        {
            "drawn_at": drawn.strftime("%Y-%m-%dT%H:%M"),
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "2",
        },
    )
    assert saved.status_code == 302 and saved.url == page
    shown = client.get(page)
    draw = patient.draws.get()
    assertContains(shown, "message-success")
    assert "just-done" in _rows_by_id(shown, "draw")[draw.pk]

    planned = client.post(
        f"/lines/{line.pk}/cycles/new/",
        {"number": "1", "scheduled_date": timezone.localdate().isoformat(), "status": "planned"},
    )
    assert planned.status_code == 302 and planned.url == page
    (cycle_pk,) = line.cycles.values_list("pk", flat=True)
    shown = client.get(page)
    assert "just-done" in _rows_by_id(shown, "cycle")[cycle_pk]
    assert "just-done" not in _rows_by_id(shown, "draw")[draw.pk]

    scanned = client.post(
        f"{page}imaging/new/",
        {"performed_on": timezone.localdate().isoformat(), "modality": "ct", "response": "SD"},
    )
    assert scanned.status_code == 302 and scanned.url == page
    (scan_pk,) = patient.imaging.values_list("pk", flat=True)
    assert "just-done" in _rows_by_id(client.get(page), "imaging")[scan_pk]


def test_tubes_drawn_together_are_shown_as_one_sample(client, nurse, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=1)
    drawn = datetime(2026, 1, 23, 9, tzinfo=UTC)
    four = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=4)
    six = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=6)
    failed = builders.draw(patient, oncologist, drawn_at=drawn, status="failed")
    client.force_login(nurse)

    rows = _rows_by_id(client.get(f"/patients/{patient.pk}/"), "draw")

    for tube in (four, six):
        row = rows[tube.pk]
        assert "pooled with 1 other tube drawn at the same time (10 cells in 15 mL)" in row
        assert "5 CTC/7.5 mL" in row  # the sample's rate, not the tube's
        assert "about 52%" in row  # near the cut-off: the chance is shown
        assert 'data-code="conversion_to_unfavourable"' in row
    assert "drawn with an evaluable sample, which stands for this draw" in rows[failed.pk]
    assert 'class="flags"' not in rows[failed.pk]
    # Only the sample's first tube offers the acknowledgement of the result.
    assert [pk for pk, row in rows.items() if "Acknowledge result" in row] == [four.pk]


def test_a_result_acknowledged_from_its_row_covers_the_cycle_it_stands_before(
    client, nurse, oncologist, patient, line
):
    today = timezone.localdate()
    cycle = builders.cycle(line, oncologist, number=2, scheduled_date=today + timedelta(days=3))
    builders.draw(patient, oncologist, drawn_at=today - timedelta(days=30), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=today - timedelta(days=2), ctc_count=12)
    page = f"/patients/{patient.pk}/"
    client.force_login(nurse)
    before = client.get(page)

    after = client.post(
        f"/draws/{high.pk}/acknowledge/",
        {"note": "Oncologist informed", "next": f"{page}#draw-{high.pk}"},
        follow=True,
    )

    assert "Acknowledge result" in _rows_by_id(before, "draw")[high.pk]
    assert 'action="/cycles/' in _rows_by_id(before, "cycle")[cycle.pk]
    draw_row = _rows_by_id(after, "draw")[high.pk]
    cycle_row = _rows_by_id(after, "cycle")[cycle.pk]
    assert '<span class="tag tag-acknowledged">acknowledged</span>' in draw_row
    assert "Acknowledge result" not in draw_row
    assert '<span class="tag tag-acknowledged">acknowledged</span>' in cycle_row
    assert 'class="ack-form"' not in cycle_row
    assert 'data-code="conversion_to_unfavourable"' in cycle_row  # the flag stays
    assertContains(after, "acknowledged by nina")
    assertContains(after, "Oncologist informed")


def test_each_cycle_says_what_stands_before_it(client, nurse, oncologist, patient, line):
    today = timezone.localdate()
    given = builders.cycle(line, oncologist, number=1, status="given")  # 2026-01-05, no draw
    due = builders.cycle(line, oncologist, number=2, scheduled_date=today + timedelta(days=4))
    later = builders.cycle(line, oncologist, number=3, scheduled_date=today + timedelta(days=25))
    client.force_login(nurse)

    rows = _rows_by_id(client.get(f"/patients/{patient.pk}/"), "cycle")

    assert "No evaluable CTC result in the pre-cycle window of cycle 1" in rows[given.pk]
    assert "Draw due: no CTC result yet in the window" in rows[due.pk]
    assert 'class="flags"' not in rows[due.pk]
    opens = today + timedelta(days=18)
    assert (
        f"Nothing due yet: the draw window opens {opens:%a} {opens.day} {opens:%b}"
        in (rows[later.pk])
    )
