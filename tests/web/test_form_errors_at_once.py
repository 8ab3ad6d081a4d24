"""Every form says everything wrong with it at once: next to each field, and in the summary.

A draw with a future time, 0 mL and a count of -3 is three problems; a clinician who is
told one, fixes it and is then told the next has been misled twice. Each message is tied
to its field (`aria-describedby`), so a screen reader reads it with the field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from patients.models import CTCDraw, ImagingAssessment, Patient, TherapyLine, TreatmentCycle
from patients.web.forms import WorklistFilterForm
from tests import builders

pytestmark = pytest.mark.django_db


class _Page(HTMLParser):
    """The fields of a page (by name) and the text of every element with an id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.fields: dict[str, dict[str, str]] = {}
        self.text: dict[str, str] = {}
        self._open: list[str] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in ("input", "select", "textarea") and "name" in found:
            self.fields[found["name"]] = found
        if tag == "a" and found.get("href", "").startswith("#id_"):
            self.links.append(found["href"][1:])
        if "id" in found and tag not in ("input", "br", "meta", "link", "img"):
            self.text.setdefault(found["id"], "")
            self._open.append(found["id"])

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            self.text[element_id] += data

    def handle_endtag(self, tag: str) -> None:
        pass  # text runs on to the end of the page: enough to find a message after an id

    def described(self, name: str) -> str:
        """The text of the elements the field `name` is described by (its error, its help)."""
        ids = self.fields[name].get("aria-describedby", "").split()
        return " ".join(self.text.get(i, "")[:300] for i in ids)


def _summary(page: _Page, summary_id: str = "form-errors") -> str:
    return page.text[summary_id].split("Save")[0]


def test_a_draw_with_a_future_time_no_blood_and_a_negative_count_reports_all_three(
    client, oncologist, patient
):
    client.force_login(oncologist)
    future = timezone.localtime() + timedelta(days=2)

    r = client.post(
        f"/patients/{patient.pk}/draws/new/",
        {
            "drawn_at": future.strftime("%Y-%m-%dT%H:%M"),
            "blood_volume_ml": "0",
            "status": "resulted",
            "ctc_count": "-3",
        },
    )

    assert r.status_code == 400
    assert CTCDraw.objects.count() == 0
    page = _Page(r.content.decode())
    assert "in the future" in page.described("drawn_at")
    assert "1.0" in page.described("blood_volume_ml")  # the entry range, not saved
    assert "0 or more" in page.described("ctc_count") or "greater than" in page.described(
        "ctc_count"
    )
    summary = _summary(page)
    assert "these 3 problems" in summary
    assert "Drawn at (local time): The draw time is in the future." in summary
    assert set(page.links) >= {"id_drawn_at", "id_blood_volume_ml", "id_ctc_count"}


def test_every_form_reports_what_the_record_refuses_beside_what_it_cannot_read(
    client, oncologist, patient, line, cycle
):
    """A field the form cannot read does not hide what the record would refuse in another."""
    client.force_login(oncologist)
    other = builders.patient(oncologist, mrn="TAKEN-1")
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    cases = [
        (  # new patient: an MRN in use, and a birth date that is no date
            "/patients/new/",
            {
                "mrn": other.mrn,
                "given_name": "A",
                "family_name": "B",
                "birth_date": "31/02",
                "sex": "female",
                "cancer_type": "breast",
            },
            {"mrn": "already", "birth_date": "date"},
        ),
        (  # new line: a number in use, and a cycle length of 0
            f"/patients/{patient.pk}/lines/new/",
            {
                "line_number": "1",
                "regimen": "FOLFOX",
                "start_date": "2026-02-01",
                "cycle_length_days": "0",
            },
            {"line_number": "already", "cycle_length_days": "1"},
        ),
        (  # new cycle: a number in use, day 1 before the line, and a status that is none
            f"/lines/{line.pk}/cycles/new/",
            {"number": "1", "scheduled_date": "2025-12-01", "status": "maybe"},
            {"number": "already", "scheduled_date": "before the line", "status": "valid"},
        ),
        (  # imaging: a date in the future, and no response
            f"/patients/{patient.pk}/imaging/new/",
            {"performed_on": tomorrow, "modality": "ct", "response": ""},
            {"performed_on": "future", "response": "required"},
        ),
    ]
    for url, data, expected in cases:
        before = [
            m.objects.count() for m in (Patient, TherapyLine, TreatmentCycle, ImagingAssessment)
        ]
        r = client.post(url, data)

        assert r.status_code == 400, url
        page = _Page(r.content.decode())
        for name, words in expected.items():
            assert words in page.described(name), (url, name, page.described(name))
        assert f"these {len(expected)} problems" in _summary(page), url
        after = [
            m.objects.count() for m in (Patient, TherapyLine, TreatmentCycle, ImagingAssessment)
        ]
        assert after == before, url


def test_a_corrected_draw_with_several_problems_reports_them_all(client, oncologist, draw):
    client.force_login(oncologist)
    other = builders.draw(
        draw.patient,
        oncologist,
        drawn_at=datetime(2026, 1, 9, 9, tzinfo=UTC),
        accession="ACC-2",
    )

    r = client.post(
        f"/draws/{other.pk}/edit/",
        {
            "drawn_at": "2026-01-09T09:00",
            "blood_volume_ml": "75",  # a slip of the decimal point
            "status": "resulted",
            "ctc_count": "3",
            "accession": "ACC-1",  # the other draw's
            "reason": "",
            "version": "1",
        },
    )

    assert r.status_code == 400
    page = _Page(r.content.decode())
    assert "10" in page.described("blood_volume_ml")
    assert "accession" in page.described("accession").lower()
    assert "required" in page.described("reason").lower()
    assert "these 3 problems" in _summary(page)


def test_entered_in_error_without_a_reason_uses_the_error_summary(client, oncologist, draw):
    client.force_login(oncologist)

    r = client.post(f"/draws/{draw.pk}/entered-in-error/", {"error-reason": "", "error-version": 1})

    assert r.status_code == 400
    page = _Page(r.content.decode())
    assert "Say why it was entered in error." in page.described("error-reason")
    summary = page.text["entered-in-error-errors"].split("Mark as")[0]
    assert "Nothing was saved" in summary and "Say why it was entered in error." in summary
    assert "id_error-reason" in page.links
    # The correction form beside it has its own fields: no id is used twice.
    assert "id_reason" in r.content.decode() and r.content.decode().count('id="id_reason"') == 1


def test_the_worklist_filters_errors_read_as_words_after_their_labels():
    """The worklist shows each as "<label>: <message>": "From: enter a date, ..."."""
    form = WorklistFilterForm({"start": "yesterday", "days": "0"})

    assert not form.is_valid()
    assert [(form.fields[name].label, errors) for name, errors in form.errors.items()] == [
        ("From", ["enter a date, such as 2026-12-03."]),
        ("Days", ["enter at least 1 day."]),
    ]


def test_a_form_without_errors_shows_no_summary(client, oncologist, patient):
    client.force_login(oncologist)

    r = client.get(f"/patients/{patient.pk}/draws/new/")

    assert 'id="form-errors"' not in r.content.decode()


def test_the_birth_date_check_of_a_patient_edit_runs_beside_a_bad_field(
    client, oncologist, patient
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2))
    client.force_login(oncologist)

    r = client.post(
        f"/patients/{patient.pk}/edit/",
        {
            "mrn": patient.mrn,
            "given_name": "",
            "family_name": "Doe",
            "birth_date": "2026-06-01",
            "sex": "female",
            "cancer_type": "breast",
            "version": "1",
        },
    )

    page = _Page(r.content.decode())
    assert "before this birth date" in page.described("birth_date")
    assert "required" in page.described("given_name").lower()
