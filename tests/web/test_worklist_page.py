"""The pre-cycle worklist page (/) and acknowledging from it."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients import assessment, services
from patients.models import AccessEvent, Acknowledgement, Patient
from patients.wording import date_text
from tests import builders
from tests.plans import Plan
from tests.web import worklist_states

pytestmark = pytest.mark.django_db


def _due_patient(by, mrn: str, family: str, counts: list[int], day1: date):
    """A patient of `by` with cycle 3 due on `day1` and a draw per count, 21 days apart,
    the last 4 days before day 1 (or yesterday, if that is sooner)."""
    patient = builders.patient(by, mrn=mrn, family_name=family, oncologist=by)
    line = builders.therapy_line(patient, by, start_date=day1 - timedelta(days=42))
    cycle = builders.cycle(line, by, number=3, scheduled_date=day1)
    latest = min(day1 - timedelta(days=4), timezone.localdate() - timedelta(days=1))
    first = latest - timedelta(days=21 * (len(counts) - 1))
    builders.draws(patient, by, counts, first=first, every_days=21)
    return patient, cycle


@pytest.fixture
def today():
    return timezone.localdate()


_ROW = re.compile(r'<li class="row [^"]*" id="(?:cycle|result)-(\d+)"')


def list_rows(response) -> dict[int, str]:
    """Each row of a list page (the worklist, the results) by its id, in the order shown:
    its markup, up to the next row or the end of its list."""
    html = response.content.decode()
    starts = list(_ROW.finditer(html))
    rows = {}
    for found, after in zip(starts, [*starts[1:], None], strict=True):
        end = html.index("</ol>", found.start())
        if after is not None:
            end = min(end, after.start())
        rows[int(found.group(1))] = html[found.start() : end]
    return rows


_rows = list_rows
URGENCY = {"view": "urgency"}


def test_it_redirects_anonymous_users_to_login(client):
    assertRedirects(client.get("/"), "/accounts/login/?next=/", fetch_redirect_response=False)


def test_it_forbids_users_without_a_role(client, outsider):
    client.force_login(outsider)

    r = client.get("/")

    assert r.status_code == 403
    assertContains(r, "no clinical role yet", status_code=403)


def test_it_lists_the_cycles_due_most_severe_first_with_flags_and_counts(
    client, nurse, oncologist, today
):
    _due_patient(oncologist, "M-1", "Calm", [0, 1], today + timedelta(days=1))
    _due_patient(oncologist, "M-2", "Risen", [1, 9], today + timedelta(days=2))
    client.force_login(nurse)

    r = client.get("/", URGENCY)

    html = r.content.decode()
    assert html.index("Risen") < html.index("Calm")
    assertContains(r, "severity-high")
    assertContains(r, "Converted to unfavourable")
    assertContains(r, "9 CTC/7.5 mL")
    assertContains(r, "MRN M-2")
    assertContains(r, "Line 1, cycle 3")
    assertContains(r, "<svg xmlns=", count=2)  # a sparkline per row (the key has its own)
    assertContains(r, 'class="ack-form"', count=1)  # only the flagged row can be acknowledged


def test_flagged_only_hides_rows_without_flags(client, nurse, oncologist, today):
    _due_patient(oncologist, "M-1", "Calm", [0, 1], today + timedelta(days=1))
    _due_patient(oncologist, "M-2", "Risen", [1, 9], today + timedelta(days=2))
    client.force_login(nurse)

    r = client.get("/", {"flagged": "on"})

    assertContains(r, "Risen")
    assertNotContains(r, "Calm")


def test_the_date_range_and_oncologist_filters_apply(client, nurse, oncologist, today):
    _due_patient(oncologist, "M-1", "Later", [2], today + timedelta(days=10))
    client.force_login(nurse)

    assertNotContains(client.get("/"), "Later")
    assertContains(client.get("/", {"start": (today + timedelta(days=9)).isoformat()}), "Later")
    assertContains(client.get("/", {"days": 14, "oncologist": oncologist.pk}), "Later")
    assertNotContains(client.get("/", {"days": 14, "oncologist": nurse.pk}), "Later")


def test_a_nurse_acknowledges_a_row_with_a_note_and_the_flags_stay(
    client, nurse, oncologist, today
):
    _patient, cycle = _due_patient(oncologist, "M-2", "Risen", [1, 9], today + timedelta(days=2))
    client.force_login(nurse)

    r = client.post(
        f"/cycles/{cycle.pk}/acknowledge/",
        {"note": "Called the patient; oncologist informed", "next": f"/#cycle-{cycle.pk}"},
        follow=True,
    )

    ack = Acknowledgement.objects.get()
    assert (ack.acknowledged_by, ack.note) == (nurse, "Called the patient; oncologist informed")
    assertContains(r, "Acknowledged cycle 3")
    row = _rows(r)[cycle.pk]
    assert "<strong>Acknowledged</strong> by nina" in row
    assert "Called the patient; oncologist informed" in row
    assert "Converted to unfavourable" in row  # the flags stay
    assert 'class="ack-form"' not in row  # nothing left to acknowledge


def test_an_acknowledged_row_follows_the_rows_still_waiting_for_one(
    client, nurse, oncologist, today
):
    _p, first = _due_patient(oncologist, "M-1", "Early", [1, 9], today + timedelta(days=1))
    _p, second = _due_patient(oncologist, "M-2", "Later", [1, 9], today + timedelta(days=2))
    services.acknowledge_cycle(cycle=first, by=nurse, note="Seen")
    client.force_login(nurse)

    r = client.get("/", URGENCY)

    assert list(_rows(r)) == [second.pk, first.pk]


def test_an_acknowledgement_without_a_note_is_refused(client, nurse, oncologist, today):
    _patient, cycle = _due_patient(oncologist, "M-2", "Risen", [1, 9], today + timedelta(days=2))
    client.force_login(nurse)

    r = client.post(f"/cycles/{cycle.pk}/acknowledge/", {"note": "  "})

    assertContains(r, "Nothing was saved", status_code=400)
    assertContains(r, '<a href="#id_note">Note: ', status_code=400)
    assert not Acknowledgement.objects.exists()


def test_acknowledging_never_redirects_off_site(client, nurse, oncologist, today):
    _patient, cycle = _due_patient(oncologist, "M-2", "Risen", [1, 9], today + timedelta(days=2))
    client.force_login(nurse)

    r = client.post(
        f"/cycles/{cycle.pk}/acknowledge/", {"note": "ok", "next": "https://evil.example/"}
    )

    assertRedirects(r, "/", fetch_redirect_response=False)


def test_the_worklist_runs_the_same_queries_for_5_and_50_patients(
    client, nurse, oncologist, today, count_queries, care_teams
):
    def add(first: int, last: int) -> None:
        for i in range(first, last):
            patient, cycle = _due_patient(
                oncologist, f"A{i}", f"F{i}", [i % 3, i % 7], today + timedelta(days=i % 7)
            )
            if i % 5 >= 3:  # 40 cells and a rejected tube beside: flagged, every other
                # one acknowledged
                drawn = builders.local_at(today - timedelta(days=1))
                builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=40)
                builders.draw(patient, oncologist, drawn_at=drawn, status="rejected")
                if i % 2:
                    services.acknowledge_cycle(cycle=cycle, by=nurse, note="Seen")

    views = [{"view": "day"}, {"view": "urgency"}, {"unacknowledged": "on"}]
    add(0, 5)
    client.force_login(nurse)
    client.get("/")
    five = [count_queries(lambda v=v: _cold(client, v)) for v in views]
    add(5, 50)

    fifty = [count_queries(lambda v=v: _cold(client, v)) for v in views]

    assert five == fifty


@pytest.mark.skipif(connection.vendor != "postgresql", reason="covering index (migration 0023)")
def test_on_postgresql_the_worklists_counts_read_no_cycle_from_the_table(
    client, nurse, oncologist, today
):
    """The page's count per rank and day and the header's capped count of the
    unacknowledged can be answered by `cycle_upcoming_ranks` alone: index-only scans,
    not a visit to the table for each cycle due (24 ms of the page at 100,000
    patients; `bench/results.md`). PostgreSQL plans an index-only scan of an index
    only when the index holds every column the query reads. Which index it prefers
    depends on statistics and on how much of the table is marked all-visible, which
    a test cannot settle (earlier tests leave both, and other sessions hold back
    what VACUUM may mark); so the look is taken with the other indexes on day 1
    dropped, in the test's transaction (rolled back after it), and with sequential
    and bitmap scans off: what is left is an index-only scan of this index, if the
    query allows one, or a sequential scan."""
    _many_due(oncologist, 12, today)
    client.force_login(nurse)
    with CaptureQueriesContext(connection) as captured:
        client.get("/", URGENCY)
    counts = [
        q["sql"]
        for q in captured.captured_queries
        if "patients_treatmentcycle" in q["sql"] and "COUNT(" in q["sql"]
    ]
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX cycle_upcoming_day_1, cycle_scheduled_status")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    plans = [Plan(sql) for sql in counts]

    assert len(plans) == 2  # per rank and day; the header's unacknowledged
    for plan in plans:
        scans = [n for n in plan.nodes() if "Scan" in n["Node Type"]]
        assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
            ("Index Only Scan", "cycle_upcoming_ranks")
        ], plan


def _cold(client, query=None, path="/"):
    """The page with no row in the cache: every row assessed, the most queries it runs."""
    cache.clear()
    return client.get(path, query)


# --- paging -----------------------------------------------------------------------------


def _many_due(by, n: int, today: date) -> None:
    """n patients due over the coming week; every third one unfavourable (flagged)."""
    for i in range(n):
        _due_patient(
            by,
            f"P{i:03d}",
            f"Family{i:03d}",
            [9 if i % 3 == 0 else 1],
            today + timedelta(days=i % 7),
        )


def _row_mrns(response) -> list[str]:
    return re.findall(
        r'<li class="row [^"]*" id="cycle-\d+" data-patient="([^"]+)"',
        response.content.decode(),
    )


def test_it_shows_fifty_rows_a_page_in_the_rules_order_with_an_accessible_pager(
    client, nurse, oncologist, today
):
    _many_due(oncologist, 55, today)
    client.force_login(nurse)

    first = client.get("/", {"days": 7, **URGENCY})
    second = client.get("/", {"days": 7, "page": 2})  # the view is kept for the session

    expected = [
        item.patient.mrn
        for item in sorted(assessment.worklist(today, 7), key=assessment.worklist_order)
    ]
    assert _row_mrns(first) + _row_mrns(second) == expected  # all 55, none twice
    assert len(_row_mrns(first)) == 50
    assertContains(first, "Showing 1–50 of 55 cycles due.")
    assertContains(second, "Showing 51–55 of 55 cycles due.")
    assertContains(first, '<nav class="pagination" aria-label="Worklist pages">')
    assertContains(first, '<span aria-current="page">Page 1 of 2</span>')
    assertContains(first, 'href="?days=7&amp;page=2" rel="next"')  # the filters are kept
    assertNotContains(first, 'rel="prev"')
    assertContains(second, 'href="?days=7&amp;page=1" rel="prev"')
    assertNotContains(second, 'rel="next"')


def test_one_page_of_rows_shows_no_pager(client, nurse, oncologist, today):
    _many_due(oncologist, 2, today)
    client.force_login(nurse)

    r = client.get("/")

    assertContains(r, "Showing 1–2 of 2 cycles due.")
    assertNotContains(r, 'class="pagination"')


@pytest.mark.parametrize("page, shown", [("99", 2), ("0", 2), ("next", 1)])
def test_a_page_out_of_range_shows_the_last_one_and_a_bad_one_the_first(
    client, nurse, oncologist, today, page, shown
):
    _many_due(oncologist, 52, today)
    client.force_login(nurse)

    r = client.get("/", {"page": page})

    # Django's get_page: out of range is the last page, not a number the first.
    assertContains(r, f'<span aria-current="page">Page {shown} of 2</span>')


def test_flagged_only_pages_and_counts_the_flagged_rows_only(client, nurse, oncologist, today):
    _many_due(oncologist, 12, today)
    client.force_login(nurse)

    r = client.get("/", {"flagged": "on", **URGENCY})

    assertContains(r, "Showing 1–4 of 4 cycles due with flags.")
    assert _row_mrns(r) == ["P000", "P009", "P003", "P006"]  # by day 1


def test_the_access_log_names_only_the_patients_on_the_page_shown(client, nurse, oncologist, today):
    _many_due(oncologist, 52, today)
    client.force_login(nurse)

    r = client.get("/", {"page": 2})

    event = AccessEvent.objects.filter(action="worklist").latest("pk")
    shown = Patient.objects.filter(mrn__in=_row_mrns(r))
    assert event.target.endswith(
        "page 2: patients " + ", ".join(str(p.pk) for p in shown.order_by("pk"))
    )
    assert len(_row_mrns(r)) == 2


def test_the_worklist_runs_the_same_queries_for_one_page_and_two(
    client, nurse, oncologist, today, count_queries, care_teams
):
    _many_due(oncologist, 5, today)
    client.force_login(nurse)
    client.get("/")
    five = count_queries(lambda: _cold(client))
    for i in range(50):
        _due_patient(oncologist, f"Q{i}", f"More{i}", [i % 9], today + timedelta(days=i % 7))

    assert count_queries(lambda: _cold(client)) == five
    assert count_queries(lambda: _cold(client, {"page": 2})) == five
    # Rows from the cache: the page's patients are not loaded at all.
    assert count_queries(lambda: client.get("/", {"page": 2})) < five


# --- states and order on today's date ---------------------------------------------------


def test_each_row_says_its_state_in_the_order_of_the_rules(client, nurse, oncologist, today):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    r = client.get("/", {"days": worklist_states.DAYS, **URGENCY})

    rows = _rows(r)
    assert list(rows) == [cycles[name].pk for name in worklist_states.ORDER]
    row = {name: rows[cycle.pk] for name, cycle in cycles.items()}
    forms = [name for name, html in row.items() if 'class="ack-form"' in html]
    assert forms == ["high", "not_evaluable", "review"]  # what waits for an acknowledgement
    assert "severity-draw_due" in row["draw_due"]
    assert "<strong>Acknowledged</strong> by nina" in row["acknowledged"]
    assert "Converted to unfavourable" in row["acknowledged"]


def test_a_draw_due_row_says_the_window_and_the_last_day_to_draw(client, nurse, oncologist, today):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    row = _rows(client.get("/", {"days": worklist_states.DAYS}))[cycles["draw_due"].pk]

    day_1 = today + timedelta(days=6)
    assert '<p class="state state-draw_due">' in row
    assert (
        f"Draw due: no CTC result yet in the window {date_text(today - timedelta(days=1))} "
        f"to {date_text(day_1)}; draw by {date_text(today + timedelta(days=3))} for the result "
        f"to be back by day 1 ({date_text(day_1)})"
    ) in row
    assert "No flags" not in row and 'class="flags"' not in row


def test_a_cycle_whose_window_has_not_opened_has_no_flag_and_says_when_it_opens(
    client, nurse, oncologist, today
):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    row = _rows(client.get("/", {"days": worklist_states.DAYS}))[cycles["not_yet_due"].pk]

    opens = today + timedelta(days=5)
    assert f"Nothing due yet: the draw window opens {date_text(opens)}" in row
    assert 'class="flags"' not in row and 'class="ack-form"' not in row
    assert "severity-none" in row


def test_a_pending_result_says_since_when_and_a_rejected_tube_asks_for_a_repeat(
    client, nurse, oncologist, today
):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    rows = _rows(client.get("/", {"days": worklist_states.DAYS}))

    yesterday = date_text(today - timedelta(days=1))
    assert f"Result pending since {yesterday}" in rows[cycles["pending"].pk]
    repeat = rows[cycles["not_evaluable"].pk]
    assert '<p class="state state-draw_due">Draw due' in repeat
    assert 'data-code="not_evaluable"' in repeat


def test_flagged_only_leaves_out_the_states_that_are_not_flags(client, nurse, oncologist, today):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    rows = _rows(client.get("/", {"days": worklist_states.DAYS, "flagged": "on", **URGENCY}))

    flagged = ["high", "not_evaluable", "review", "acknowledged", "info"]
    assert list(rows) == [cycles[name].pk for name in flagged]


def test_a_latest_draw_without_a_count_says_its_status(client, nurse, oncologist, today):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    rows = _rows(client.get("/", {"days": worklist_states.DAYS}))

    yesterday = today - timedelta(days=1)
    short = f"{yesterday.day} {yesterday:%b}"
    assert (
        f'<span class="tube-status">rejected {short}: repeat needed</span>'
        in (rows[cycles["not_evaluable"].pk])
    )
    assert f'<span class="tube-status">pending since {short}</span>' in rows[cycles["pending"].pk]
