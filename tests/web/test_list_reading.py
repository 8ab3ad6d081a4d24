"""How the worklist, the results to review and the patient list read (issue: the ward's view).

One compact row per cycle or result with its reasons as chips, the full flags without
p-values behind a disclosure, the near-the-cut-off chance, the latest tube whatever its
status beside the latest count (the same words on the worklist and the patient list),
people by their full names, MRNs that never break, and the worklist by day 1, today
first, or by urgency, remembered for the session.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from patients import services
from patients.models import Acknowledgement, CTCDraw
from tests import builders
from tests.web import worklist_states
from tests.web.test_worklist_page import list_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def today() -> date:
    return timezone.localdate()


def _short(day: date) -> str:
    return f"{day.day} {day:%b}"


def _due(by, family: str, day_1: date, **fields):
    patient = builders.patient(by, family_name=family, oncologist=by, **fields)
    line = builders.therapy_line(patient, by, start_date=day_1 - timedelta(days=21))
    return patient, builders.cycle(line, by, number=2, scheduled_date=day_1)


def _named(user, first: str, last: str):
    user.first_name, user.last_name = first, last
    user.save(update_fields=["first_name", "last_name"])
    return user


# --- chips, p-values, chance ------------------------------------------------------------------


def test_a_row_says_its_reasons_in_words_and_the_flags_without_p_values(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Risen", today + timedelta(days=2))
    high = builders.high_result(oncologist, patient, today - timedelta(days=1))
    client.force_login(nurse)

    page = client.get(f"/patients/{patient.pk}/").content.decode()
    row = list_rows(client.get("/"))[cycle.pk]
    result = list_rows(client.get("/results/"))[high.pk]

    assert re.search(r"\(p (=|<) 0\.\d+\)", page)  # the patient page keeps the p-value
    for html in (row, result):
        chips = re.findall(r'<li class="chip chip-(\w+)">.*?</span>([^<]+)</li>', html)
        assert ("high", "converted") in chips and ("review", "rise") in chips
        assert "Converted to unfavourable" in html  # the full message, behind the disclosure
        assert "<details" in html and 'class="ack-form"' in html
        assert not re.search(r"p (=|<) 0\.\d", html)


def test_a_draw_due_says_due_and_the_chips_use_the_issues_words(client, nurse, oncologist):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    rows = list_rows(client.get("/", {"days": worklist_states.DAYS}))

    words = set(
        re.findall(r'<li class="chip chip-\w+">.*?</span>([^<]+)</li>', "".join(rows.values()))
    )
    assert words <= {"baseline", "converted", "persistent", "rise", "due", "missing",
                     "not evaluable", "discordant", "doxorubicin", "volume"}  # fmt: skip
    assert '<li class="chip chip-due">' in rows[cycles["draw_due"].pk]
    assert "not evaluable" in rows[cycles["not_evaluable"].pk]
    assert ">baseline</li>" in rows[cycles["review"].pk]


def test_the_near_the_cut_off_chance_shows_on_both_lists(client, nurse, oncologist, today):
    patient, cycle = _due(oncologist, "Near", today + timedelta(days=2), cancer_type="colorectal")
    drawn = builders.local_at(today - timedelta(days=2))  # 6 cells in 15 mL: 3, the cut-off
    first = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=2)
    builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=4)
    client.force_login(nurse)

    chance = "chance that the true count is at or above the cut-off: about 53%"
    assert chance in list_rows(client.get("/"))[cycle.pk]
    assert chance in list_rows(client.get("/results/"))[first.pk]


# --- latest count ------------------------------------------------------------------------


def test_the_latest_tube_shows_whatever_its_status_beside_the_latest_count(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Rejected", today + timedelta(days=2))
    builders.draw(
        patient, oncologist, drawn_at=builders.local_at(today - timedelta(9)), ctc_count=7
    )
    builders.draw(
        patient, oncologist, drawn_at=builders.local_at(today - timedelta(2)), status="rejected"
    )
    client.force_login(nurse)

    row = list_rows(client.get("/"))[cycle.pk]
    listed = client.get("/patients/").content.decode()

    said = (
        f'<span class="tube-status">rejected {_short(today - timedelta(2))}: repeat needed</span>'
    )
    for html in (row, listed):
        assert said in html
        assert "last count</span> 7 CTC/7.5 mL" in html
        assert "category-unfavourable" in html
        assert f"{today - timedelta(9):%a} {(today - timedelta(9)).day} " in html


def test_a_pending_tube_says_since_when_on_both_lists(client, nurse, oncologist, today):
    patient, cycle = _due(oncologist, "Waiting", today + timedelta(days=2))
    builders.draw(
        patient, oncologist, drawn_at=builders.local_at(today - timedelta(1)), status="pending"
    )
    client.force_login(nurse)

    said = f'<span class="tube-status">pending since {_short(today - timedelta(1))}</span>'
    assert said in list_rows(client.get("/"))[cycle.pk]
    assertContains(client.get("/patients/"), said)


def test_a_rejected_tube_beside_a_resulted_one_shows_the_resulted_sample(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Beside", today + timedelta(days=2))
    drawn = builders.local_at(today - timedelta(2))
    builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=drawn, status="rejected")
    client.force_login(nurse)

    for html in (list_rows(client.get("/"))[cycle.pk], client.get("/patients/").content.decode()):
        assert 'class="tube-status"' not in html
        assert "1 CTC/7.5 mL" in html and "category-favourable" in html


# --- people and MRNs ----------------------------------------------------------------------


def test_people_are_named_in_full_and_mrns_never_break(client, nurse, oncologist, today):
    _named(nurse, "Nina", "Novak")
    _named(oncologist, "Olivia", "Okafor")
    patient, cycle = _due(oncologist, "Seen", today + timedelta(days=2))
    builders.high_result(oncologist, patient, today - timedelta(days=1))
    services.acknowledge_cycle(cycle=cycle, by=nurse, note="Oncologist informed")
    client.force_login(nurse)

    worklist = client.get("/")
    row = list_rows(worklist)[cycle.pk]

    assert "Acknowledged by Nina Novak" in row and "Oncologist informed" in row
    assert re.search(r'<p class="ack-line">.*Nina Novak.*\d{1,2} \w{3} \d{4} \d\d:\d\d', row)
    assert "is-acknowledged" in row
    assertContains(worklist, ">Olivia Okafor</option>")
    assert f'<span class="muted mrn">MRN {patient.mrn}</span>' in row
    listed = client.get("/patients/")
    assertContains(listed, "<td>Olivia Okafor</td>")
    assertContains(listed, f'<td class="mrn">{patient.mrn}</td>')


# --- the worklist by day, by urgency, needing acknowledgement ----------------------------


def _headings(response) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", h).strip()
        for h in re.findall(r'<h2 class="day-heading"[^>]*>(.*?)</h2>', response.content.decode())
    ]


def test_the_worklist_groups_by_day_1_today_first_each_day_in_the_rules_order(
    client, nurse, oncologist, today
):
    _p, calm_today = _due(oncologist, "Calm", today)
    builders.draw(_p, oncologist, drawn_at=builders.local_at(today - timedelta(1)), ctc_count=0)
    _p, risen_today = _due(oncologist, "Risen", today)
    builders.high_result(oncologist, _p, today - timedelta(days=1))
    _p, tomorrow = _due(oncologist, "Next", today + timedelta(days=1))
    _p, later = _due(oncologist, "Later", today + timedelta(days=3))
    builders.high_result(oncologist, _p, today - timedelta(days=1))
    client.force_login(nurse)

    r = client.get("/")

    def day(n: int) -> str:  # "Thu 3 Dec 2026"
        d = today + timedelta(days=n)
        return f"{d:%a} {d.day} {d:%b %Y}"

    assert _headings(r) == [f"Today {day(0)}", f"Tomorrow {day(1)}", day(3)]
    assert list(list_rows(r)) == [risen_today.pk, calm_today.pk, tomorrow.pk, later.pk]
    assertContains(r, '<a href="?view=day" aria-current="page">By day</a>', html=False)


def test_by_urgency_is_one_click_away_and_remembered_for_the_session(
    client, nurse, oncologist, today
):
    _p, calm_today = _due(oncologist, "Calm", today)
    _p, later = _due(oncologist, "Later", today + timedelta(days=3))
    builders.high_result(oncologist, _p, today - timedelta(days=1))
    client.force_login(nurse)

    assertContains(client.get("/"), 'href="?view=urgency"')
    urgent = client.get("/", {"view": "urgency"})
    again = client.get("/")

    assert list(list_rows(urgent)) == list(list_rows(again)) == [later.pk, calm_today.pk]
    assert _headings(again) == []
    assertContains(again, 'aria-current="page">By urgency</a>')
    assert list(list_rows(client.get("/", {"view": "day"}))) == [calm_today.pk, later.pk]


def test_needs_acknowledgement_shows_only_the_rows_waiting_for_one(client, nurse, oncologist):
    cycles = worklist_states.build(oncologist, nurse)
    client.force_login(nurse)

    r = client.get("/", {"days": worklist_states.DAYS, "unacknowledged": "on", "view": "urgency"})

    assert list(list_rows(r)) == [cycles[n].pk for n in ("high", "not_evaluable", "review")]
    assertContains(r, "cycles due that need acknowledgement.")


def test_a_filter_error_names_the_field_in_words(client, nurse):
    client.force_login(nurse)

    r = client.get("/", {"days": "0"})

    assertContains(r, "<p>Days: ")
    assertNotContains(r, "<p>days:")


# --- after acknowledging ------------------------------------------------------------------


def test_after_acknowledging_the_page_opens_at_the_message_with_the_row_highlighted_once(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Risen", today + timedelta(days=2), mrn="HL-1")
    builders.high_result(oncologist, patient, today - timedelta(days=1))
    client.force_login(nurse)

    r = client.post(
        f"/cycles/{cycle.pk}/acknowledge/",
        {"note": "Oncologist informed", "next": f"/?days=7#cycle-{cycle.pk}"},
    )
    shown = client.get(r.url)

    assert r.url == "/?days=7"  # no anchor: the page opens at its top, at the message
    assertContains(shown, "Acknowledged cycle 2 of Paclitaxel for Risen, ")
    assertContains(shown, "(MRN HL-1).")
    assert "just-done" in list_rows(shown)[cycle.pk]
    assert "just-done" not in client.get("/?days=7").content.decode()  # once


def test_acknowledging_from_the_patient_page_highlights_nothing_on_the_worklist_later(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Risen", today + timedelta(days=2))
    builders.high_result(oncologist, patient, today - timedelta(days=1))
    client.force_login(nurse)

    r = client.post(
        f"/cycles/{cycle.pk}/acknowledge/",
        {"note": "Oncologist informed", "next": f"/patients/{patient.pk}/#cycle-{cycle.pk}"},
    )

    assert r.url == f"/patients/{patient.pk}/"
    assertContains(client.get(r.url), "Acknowledged cycle 2 of Paclitaxel")
    assert "just-done" not in client.get("/").content.decode()


def _error_summary(r) -> str:
    """The error summary of a refused acknowledgement (answered 400, not redirected)."""
    assert r.status_code == 400
    html = r.content.decode()
    start = html.index('id="form-errors"')
    return html[start : html.index("</div>", start)]


def test_a_second_acknowledgement_within_minutes_is_refused_with_a_message(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Risen", today + timedelta(days=2))
    high = builders.high_result(oncologist, patient, today - timedelta(days=1))
    client.force_login(nurse)

    for url in (f"/cycles/{cycle.pk}/acknowledge/", f"/draws/{high.pk}/acknowledge/"):
        client.post(url, {"note": "Oncologist informed"})
        r = client.post(url, {"note": "Oncologist informed"})
        # The app's error summary, as on every form, with the note kept to try again.
        summary = _error_summary(r)
        assert "Nothing was saved" in summary and "You acknowledged this " in summary
        assert "less than 10 minutes ago; it was not acknowledged again." in summary
        assertContains(r, "Oncologist informed</textarea>", status_code=400)
    assert Acknowledgement.objects.count() == 2


def test_a_cycle_with_nothing_to_acknowledge_is_refused_with_a_message(
    client, nurse, oncologist, today
):
    patient, cycle = _due(oncologist, "Calm", today + timedelta(days=2))
    builders.draw(
        patient, oncologist, drawn_at=builders.local_at(today - timedelta(1)), ctc_count=0
    )
    client.force_login(nurse)

    r = client.post(f"/cycles/{cycle.pk}/acknowledge/", {"note": "Seen"})

    assert "Nothing to acknowledge: this cycle has no high or review" in _error_summary(r)
    assert not Acknowledgement.objects.exists()


# --- results: a lone rejected tube takes its place --------------------------------------------


def test_a_lone_rejected_tube_is_listed_by_when_it_was_entered_not_last(
    client, nurse, oncologist, today
):
    lone = builders.patient(oncologist, family_name="Lone", oncologist=oncologist)
    rejected = builders.draw(
        lone, oncologist, drawn_at=builders.local_at(today - timedelta(3)), status="rejected"
    )
    later = builders.review_result(oncologist, builders.patient(oncologist), today)
    CTCDraw.objects.filter(pk=later.pk).update(resulted_at=timezone.now() + timedelta(minutes=5))
    client.force_login(nurse)

    r = client.get("/results/")

    assert list(list_rows(r)) == [rejected.pk, later.pk]  # both review: the older first
    assert "rejected" in list_rows(r)[rejected.pk].lower()
