"""The draw form under version 2 of the rules: a count that is a lower bound (the "more
than" box, or ">1000" typed in the count), the 1.0-10.0 mL volume, and how the pages
then show such a count."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pytest_django.asserts import assertContains

from patients.models import VOLUME_OUT_OF_RANGE, CTCDraw, TreatmentCycle
from tests import builders

pytestmark = pytest.mark.django_db

GOOD = {
    "drawn_at": "2026-01-23T09:00",
    "blood_volume_ml": "7.5",
    "status": "resulted",
    "ctc_count": "8",
}


def _new(client, patient, **change):
    return client.post(f"/patients/{patient.pk}/draws/new/", {**GOOD, **change})


def _form_errors(response) -> dict[str, list[str]]:
    return response.context["form"].errors


@pytest.mark.parametrize(
    "change",
    [
        {"ctc_count": "1000", "count_qualifier": "on"},
        {"ctc_count": ">1000"},
        {"ctc_count": "> 1000"},
        {"ctc_count": " >1000 ", "count_qualifier": "on"},  # both ways at once: the same
    ],
)
def test_a_lower_bound_is_entered_by_the_box_or_typed(client, oncologist, patient, change):
    client.force_login(oncologist)

    r = _new(client, patient, **change)

    assert r.status_code == 302
    draw = CTCDraw.objects.get()
    assert (draw.count_qualifier, draw.ctc_count) == (">", 1000)


def test_without_the_box_or_the_sign_the_count_is_exact(client, oncologist, patient):
    client.force_login(oncologist)

    _new(client, patient, ctc_count="1000")

    assert CTCDraw.objects.get().count_qualifier == ""


def test_the_form_shows_the_more_than_box_right_after_the_count(client, oncologist, patient):
    client.force_login(oncologist)

    r = client.get(f"/patients/{patient.pk}/draws/new/")

    fields = list(r.context["form"].fields)
    assert fields[fields.index("ctc_count") + 1] == "count_qualifier"
    assertContains(r, 'type="checkbox" name="count_qualifier"')
    assertContains(r, "More than: the count is a lower bound")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"ctc_count": ">"}, "ctc_count", "a lower bound such as >1000"),
        ({"ctc_count": ">abc"}, "ctc_count", "a lower bound such as >1000"),
        ({"ctc_count": "<5"}, "ctc_count", "whole number of cells"),
        ({"ctc_count": ">4"}, "ctc_count", "A lower bound below the cut-off cannot be classified"),
        (
            {"ctc_count": "", "status": "failed", "count_qualifier": "on"},
            "count_qualifier",
            "no count",
        ),
    ],
)
def test_a_bad_lower_bound_is_reported_next_to_its_field(
    client, oncologist, patient, change, field, words
):
    client.force_login(oncologist)

    r = _new(client, patient, **change)

    assert r.status_code == 400
    assert list(_form_errors(r)) == [field]
    assert words in _form_errors(r)[field][0]
    assert not CTCDraw.objects.exists()


@pytest.mark.parametrize("volume", ["0.9", "10.1", "0.5", "12"])
def test_a_volume_outside_1_to_10_ml_is_reported_next_to_the_volume(
    client, oncologist, patient, volume
):
    client.force_login(oncologist)

    r = _new(client, patient, blood_volume_ml=volume)

    assert r.status_code == 400
    assert _form_errors(r) == {"blood_volume_ml": [VOLUME_OUT_OF_RANGE]}
    assertContains(r, "Nothing was saved", status_code=400)
    assert not CTCDraw.objects.exists()


@pytest.mark.parametrize("volume", ["1.0", "10.0"])
def test_a_volume_at_either_end_of_the_range_is_saved(client, oncologist, patient, volume):
    client.force_login(oncologist)

    assert _new(client, patient, blood_volume_ml=volume).status_code == 302
    assert CTCDraw.objects.get().blood_volume_ml == float(volume)


def _edit(client, draw, **change):
    fields = {
        "drawn_at": "2026-01-02T09:00",
        "blood_volume_ml": "7.5",
        "status": "resulted",
        "ctc_count": str(draw.ctc_count),
        "version": builders.version_of(draw),
        "reason": "Lab report checked",
    }
    return client.post(f"/draws/{draw.pk}/edit/", {**fields, **change})


def test_typing_the_sign_on_an_edit_makes_the_count_a_lower_bound(client, oncologist, patient):
    draw = builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=1000
    )
    client.force_login(oncologist)

    r = _edit(client, draw, ctc_count=">1000")

    assert r.status_code == 302
    draw.refresh_from_db()
    assert (draw.count_qualifier, draw.ctc_count) == (">", 1000)


def test_unticking_the_box_on_an_edit_makes_the_count_exact(client, oncologist, patient):
    draw = builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC),
        ctc_count=1000,
        count_qualifier=">",
    )
    client.force_login(oncologist)
    page = client.get(f"/draws/{draw.pk}/edit/")
    assert page.context["form"]["count_qualifier"].value() is True  # shown ticked
    assertContains(page, 'id="id_count_qualifier" checked')

    r = _edit(client, draw)  # the box not sent: unticked

    assert r.status_code == 302
    draw.refresh_from_db()
    assert (draw.count_qualifier, draw.ctc_count) == ("", 1000)


def test_the_pages_show_a_lower_bound_as_more_than(client, oncologist, patient):
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC),
        ctc_count=1000,
        count_qualifier=">",
    )
    client.force_login(oncologist)

    assertContains(client.get(f"/patients/{patient.pk}/"), "&gt; 1000 CTC/7.5 mL")
    assertContains(client.get("/patients/"), "&gt; 1000 CTC/7.5 mL")


# --- the cycle form and the first planned day 1 --------------------------------------------


def test_the_cycle_form_never_offers_the_first_planned_day_1(client, oncologist, cycle):
    client.force_login(oncologist)

    assert (
        "first_scheduled_date" not in client.get(f"/cycles/{cycle.pk}/edit/").context["form"].fields
    )


def test_a_delay_on_the_page_keeps_each_cycles_first_planned_day_1(client, oncologist, line, cycle):
    later = builders.cycle(line, oncologist, number=2, scheduled_date=date(2026, 1, 26))
    client.force_login(oncologist)

    r = client.post(
        f"/cycles/{cycle.pk}/edit/",
        {
            "number": 1,
            "scheduled_date": "2026-01-12",
            "status": "delayed",
            "status_reason": "Neutrophils 0.8",
            "move_later_cycles": "on",
            "version": builders.version_of(cycle),
        },
    )

    assert r.status_code == 302
    stored = {
        c.pk: (c.scheduled_date, c.first_scheduled_date) for c in TreatmentCycle.objects.all()
    }
    assert stored == {
        cycle.pk: (date(2026, 1, 12), date(2026, 1, 5)),
        later.pk: (date(2026, 2, 2), date(2026, 1, 26)),
    }


def test_correcting_a_planned_day_1_on_the_page_moves_the_first_planned_day_1(
    client, oncologist, cycle
):
    client.force_login(oncologist)
    corrected = cycle.scheduled_date + timedelta(days=2)

    client.post(
        f"/cycles/{cycle.pk}/edit/",
        {
            "number": 1,
            "scheduled_date": corrected.isoformat(),
            "status": "planned",
            "version": builders.version_of(cycle),
        },
    )

    cycle.refresh_from_db()
    assert (cycle.scheduled_date, cycle.first_scheduled_date) == (corrected, corrected)
