"""The results to review page (/results/), acknowledging from it, and the header's counts."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from patients import services
from patients.models import AccessAction, AccessEvent, Acknowledgement, CTCDraw, Patient
from patients.web import results as results_view
from tests import builders

pytestmark = pytest.mark.django_db


@pytest.fixture
def today() -> date:
    return timezone.localdate()


_at = builders.local_at


def _patient(by, family: str, **fields) -> Patient:
    return builders.patient(by, family_name=family, oncologist=by, **fields)


_high = builders.high_result


_review = builders.review_result


def _row_ids(response) -> list[int]:
    return [
        int(pk)
        for pk in re.findall(
            r'<li class="row [^"]*severity-\w+[^"]*" id="result-(\d+)"', _html(response)
        )
    ]


def _html(response) -> str:
    return response.content.decode()


def _header_count(response, link: str) -> int | str | None:
    """The open count the header shows beside `link` ("Worklist", "Results to review"):
    a number, or "99+" when more than 99 wait."""
    found = re.search(rf'>{link} <span class="count"[^>]*>(\d+\+?)</span>', _html(response))
    if found is None:
        return None
    return found.group(1) if found.group(1).endswith("+") else int(found.group(1))


def test_it_redirects_anonymous_users_to_login(client):
    assertRedirects(
        client.get("/results/"), "/accounts/login/?next=/results/", fetch_redirect_response=False
    )


def test_it_forbids_users_without_a_role(client, outsider, oncologist, today):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=1))
    client.force_login(outsider)

    page = client.get("/results/")
    acknowledged = client.post(f"/draws/{draw.pk}/acknowledge/", {"note": "Seen"})

    assert (page.status_code, acknowledged.status_code) == (403, 403)
    assert not Acknowledgement.objects.exists()


def test_it_lists_the_results_most_severe_first_then_oldest_with_their_flags(
    client, nurse, oncologist, today
):
    review = _review(oncologist, _patient(oncologist, "Early", mrn="R-1"), today - timedelta(3))
    high = _high(oncologist, _patient(oncologist, "Brown", mrn="R-2"), today - timedelta(2))
    builders.draw(
        _patient(oncologist, "Calm"), oncologist, drawn_at=_at(today - timedelta(1)), ctc_count=0
    )
    client.force_login(nurse)

    r = client.get("/results/")

    assert _row_ids(r) == [high.pk, review.pk]
    assertContains(r, "2 results to review.")
    assertContains(r, 'severity-high" id="result-')
    assertContains(r, "Converted to unfavourable: 12 CTC/7.5 mL")
    assertContains(r, "Unfavourable at baseline: 9 CTC/7.5 mL")
    assertContains(r, "MRN R-2")
    assertContains(r, f'action="/draws/{high.pk}/acknowledge/"')
    assertNotContains(r, "Calm")


def test_a_pooled_sample_is_one_row_that_says_how_many_tubes_and_the_chance(
    client, nurse, oncologist, today
):
    patient = _patient(oncologist, "Pooled", cancer_type="colorectal")  # cut-off 3
    drawn = _at(today - timedelta(days=2))
    first = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=2)
    builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=4)
    client.force_login(nurse)

    r = client.get("/results/")

    # 6 cells in 15 mL: 3 per 7.5 mL, at the cut-off, and far from clear.
    assert _row_ids(r) == [first.pk]
    assertContains(r, "2 tubes pooled")
    assertContains(r, "3 CTC/7.5 mL")
    assertContains(r, "chance that the true count is at or above the cut-off: about 53%")


def test_an_escalated_result_is_marked(client, nurse, oncologist, today):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=3))
    CTCDraw.objects.filter(pk=draw.pk).update(escalated_at=timezone.now())
    client.force_login(nurse)

    assertContains(client.get("/results/"), '<span class="tag tag-escalated">escalated</span>')


def test_a_nurse_acknowledges_a_result_with_a_note_and_it_leaves_the_list(
    client, nurse, oncologist, today
):
    high = _high(oncologist, _patient(oncologist, "Brown", given_name="Pat"), today - timedelta(2))
    review = _review(oncologist, _patient(oncologist, "Other"), today - timedelta(days=1))
    client.force_login(nurse)

    r = client.post(
        f"/draws/{high.pk}/acknowledge/",
        {"note": "Oncologist informed", "next": "/results/"},
        follow=True,
    )

    ack = Acknowledgement.objects.get()
    assert (ack.draw, ack.acknowledged_by, ack.note) == (high, nurse, "Oncologist informed")
    assert r.redirect_chain == [("/results/", 302)]
    assertContains(r, "Acknowledged the result drawn")
    assertContains(r, f"for Brown, Pat (MRN {high.patient.mrn}).")
    assert _row_ids(r) == [review.pk]


def test_a_blank_note_is_refused_with_a_message_and_the_row_stays(client, nurse, oncologist, today):
    high = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    client.force_login(nurse)

    r = client.post(f"/draws/{high.pk}/acknowledge/", {"note": "   ", "next": "/results/"})

    # The error summary names the field and links to it, as on every form.
    assertContains(
        r,
        '<a href="#id_note">Note: Write a note saying what you checked or did.</a>',
        status_code=400,
    )
    assertContains(r, 'id="form-errors"', status_code=400)
    assertContains(r, '<a href="/results/">Cancel</a>', status_code=400)
    assert not Acknowledgement.objects.exists()
    assert _row_ids(client.get("/results/")) == [high.pk]


def test_a_note_too_long_is_refused_in_the_summary_and_the_form_tries_again(
    client, nurse, oncologist, today
):
    high = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    client.force_login(nurse)

    r = client.post(f"/draws/{high.pk}/acknowledge/", {"note": "x" * 2001, "next": "/results/"})

    assertContains(
        r, '<a href="#id_note">Note: Ensure this value has at most 2000', status_code=400
    )
    assertContains(r, 'name="next" value="/results/"', status_code=400)
    assert not Acknowledgement.objects.exists()
    # The page's form posts to the same place, and goes back to the list when accepted.
    r = client.post(f"/draws/{high.pk}/acknowledge/", {"note": "Seen", "next": "/results/"})
    assert r.status_code == 302 and r.url == "/results/"
    assert Acknowledgement.objects.count() == 1


def test_a_result_with_nothing_to_acknowledge_is_refused_with_a_message(
    client, nurse, oncologist, today
):
    calm = builders.draw(
        _patient(oncologist, "Calm"), oncologist, drawn_at=_at(today - timedelta(1)), ctc_count=1
    )
    client.force_login(nurse)

    r = client.post(f"/draws/{calm.pk}/acknowledge/", {"note": "Seen"})

    assertContains(r, "<li>Nothing to acknowledge", status_code=400)
    assert not Acknowledgement.objects.exists()


def test_acknowledging_never_redirects_off_site(client, nurse, oncologist, today):
    high = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    client.force_login(nurse)

    r = client.post(
        f"/draws/{high.pk}/acknowledge/", {"note": "ok", "next": "https://evil.example/"}
    )

    assertRedirects(r, "/results/", fetch_redirect_response=False)


def test_acknowledging_needs_a_post(client, nurse, oncologist, today):
    high = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    client.force_login(nurse)

    assert client.get(f"/draws/{high.pk}/acknowledge/").status_code == 405


def test_reading_the_page_is_in_the_access_log_with_the_patients_shown(
    client, nurse, oncologist, today
):
    shown = [_patient(oncologist, name) for name in ("Shown", "Also")]
    for patient in shown:
        _review(oncologist, patient, today - timedelta(days=1))
    builders.draw(
        _patient(oncologist, "Quiet"), oncologist, drawn_at=_at(today - timedelta(1)), ctc_count=0
    )
    client.force_login(nurse)

    client.get("/results/")

    event = AccessEvent.objects.filter(action=AccessAction.RESULTS).get()
    ids = ", ".join(str(p.pk) for p in sorted(shown, key=lambda p: p.pk))
    assert (event.user, event.target) == (nurse, f"results to review: patients {ids}")


def test_an_empty_list_says_so(client, nurse):
    client.force_login(nurse)

    assertContains(client.get("/results/"), "No results wait for review.")


def test_it_shows_fifty_rows_a_page_with_a_pager(client, nurse, oncologist, today):
    made = [
        _review(oncologist, _patient(oncologist, f"Family{i:03d}"), today - timedelta(days=1))
        for i in range(52)
    ]
    client.force_login(nurse)

    first = client.get("/results/")
    second = client.get("/results/", {"page": 2})

    assert _row_ids(first) + _row_ids(second) == [d.pk for d in made]  # oldest first
    assertContains(first, "52 results to review.")
    assertContains(first, '<nav class="pagination" aria-label="Result pages">')
    assertContains(first, 'href="?page=2" rel="next"')
    assertContains(second, '<span aria-current="page">Page 2 of 2</span>')


def test_a_long_list_says_more_than_it_counted_and_pages_on_without_a_total(
    client, nurse, oncologist, today, monkeypatch, count_queries
):
    # The list counts 1,000 results beyond the page; 7 results and 2 a page show it at scale.
    monkeypatch.setattr(results_view, "RESULTS_PAGE_SIZE", 2)
    monkeypatch.setattr(results_view, "RESULTS_COUNTED_AHEAD", 3)
    made = [
        _review(oncologist, _patient(oncologist, f"Family{i:03d}"), today - timedelta(days=1))
        for i in range(7)
    ]
    client.force_login(nurse)

    first = client.get("/results/")
    third = client.get("/results/", {"page": 3})
    last = client.get("/results/", {"page": 4})

    # Page 1 counts up to 2 + 3 rows: more wait, and it says no number it did not count.
    assertContains(first, "More than 5 results to review.")
    assertContains(first, '<span aria-current="page">Page 1</span>')
    assertContains(first, 'href="?page=2" rel="next"')
    # Page 3 counts as far as 2 * 3 + 3 rows: all 7, an exact figure again.
    assertContains(third, "7 results to review.")
    assertContains(third, '<span aria-current="page">Page 3 of 4</span>')
    assert _row_ids(last) == [made[6].pk]
    # Counting only so far is the same one query as counting them all.
    capped = count_queries(lambda: _cold(client))
    exact = count_queries(lambda: _cold(client, {"page": 3}))
    assert capped == exact


# --- the header's open counts -------------------------------------------------------------


def test_the_header_counts_open_results_and_worklist_rows_and_both_drop_when_acknowledged(
    client, nurse, oncologist, today
):
    patient = _patient(oncologist, "Brown")
    line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=42))
    builders.cycle(line, oncologist, number=3, scheduled_date=today + timedelta(days=3))
    in_window = _high(oncologist, patient, today - timedelta(days=2))
    _review(oncologist, _patient(oncologist, "Other"), today - timedelta(days=40))
    client.force_login(nurse)

    before = client.get("/patients/")
    services.acknowledge_result(draw=in_window, by=nurse, note="Seen")
    after = client.get("/patients/")

    assert (_header_count(before, "Worklist"), _header_count(before, "Results to review")) == (
        1,
        2,
    )
    # The result covered the cycle's flags too: nothing waits on the worklist this week.
    assert (_header_count(after, "Worklist"), _header_count(after, "Results to review")) == (
        None,
        1,
    )


def test_the_header_counts_results_up_to_99_then_says_99_plus(client, nurse, oncologist, today):
    # 100 results waiting: counted to 99 and one more, the header says "99+", not 100.
    made = [
        _review(oncologist, _patient(oncologist, f"Family{i:03d}"), today - timedelta(days=1))
        for i in range(100)
    ]
    client.force_login(nurse)

    hundred = client.get("/patients/")
    services.acknowledge_result(draw=made[0], by=nurse, note="Seen")
    ninety_nine = client.get("/patients/")

    assert _header_count(hundred, "Results to review") == "99+"
    assert _header_count(ninety_nine, "Results to review") == 99


def test_the_header_counts_the_worklist_up_to_99_then_says_99_plus(
    client, nurse, oncologist, today
):
    # 100 cycles due this week with a high flag nobody acknowledged: "99+", not 100.
    cycles = []
    for i in range(100):
        patient = _patient(oncologist, f"Family{i:03d}")
        line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=42))
        day1 = today + timedelta(days=1 + i % 6)
        cycles.append(builders.cycle(line, oncologist, number=3, scheduled_date=day1))
        _high(oncologist, patient, today - timedelta(days=1))  # in each cycle's window
    client.force_login(nurse)

    hundred = client.get("/patients/")
    services.acknowledge_cycle(cycle=cycles[0], by=nurse, note="Seen")
    ninety_nine = client.get("/patients/")

    assert _header_count(hundred, "Worklist") == "99+"
    assert _header_count(ninety_nine, "Worklist") == 99


def test_the_header_counts_only_what_the_user_may_see(client, outsider, oncologist, today):
    _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    client.force_login(outsider)

    r = client.get("/accounts/mfa/")

    assertNotContains(r, "Results to review")
    assertNotContains(r, 'class="count"')


# --- queries -------------------------------------------------------------------------------


def test_the_page_runs_the_same_queries_for_5_and_50_results(
    client, nurse, oncologist, today, count_queries, care_teams
):
    def add(first: int, last: int) -> None:
        for i in range(first, last):
            patient = _patient(oncologist, f"F{i}")
            day = today - timedelta(days=2)
            if i % 2:  # two tubes of one venepuncture, and a rejected one beside them
                builders.draw(patient, oncologist, drawn_at=_at(day), ctc_count=i % 9 + 5)
                builders.draw(patient, oncologist, drawn_at=_at(day), status="rejected")
            _high(oncologist, patient, day)
            services.acknowledge_result(
                draw=_review(oncologist, _patient(oncologist, f"G{i}"), day), by=nurse, note="ok"
            )

    add(0, 5)
    client.force_login(nurse)
    client.get("/results/")
    five = count_queries(lambda: _cold(client))
    add(5, 50)

    fifty = count_queries(lambda: _cold(client))

    assert five == fifty
    assertContains(client.get("/results/"), "50 results to review.")
    # Rows from the cache: the page's patients are not loaded at all.
    assert count_queries(lambda: client.get("/results/")) < fifty


def _cold(client, query=None):
    """The page with no row in the cache: every row assessed, the most queries it runs."""
    cache.clear()
    return client.get("/results/", query)
