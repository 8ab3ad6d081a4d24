"""The use cases the pages and the API share: one function each, whoever calls it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.paginator import Paginator

from patients import assessment, rules, services
from patients.interop.csv import importer
from patients.models import AccessEvent, CTCDraw
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

DATA = SAMPLES / "csv"
HEADER = "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"


def _unfavourable_draw(patient, by) -> CTCDraw:
    return services.record_draw(
        patient=patient, by=by, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=8
    )


# --- acknowledging a cycle's flags -----------------------------------------------------


def test_an_acknowledgement_keeps_the_flags_the_rules_give_the_cycle_now(
    oncologist, nurse, patient, cycle
):
    draw = _unfavourable_draw(patient, oncologist)
    now = assessment.series_for(patient).cycle_assessment(cycle).flags

    ack = services.acknowledge_cycle(cycle=cycle, by=nurse, note="Oncologist informed")

    recorded = [(f["code"], f["severity"], f["message"], f["source"]) for f in ack.flags]
    assert recorded == [(f.code, f.severity, f.message, f.source) for f in now]
    assert [(f["code"], f["source"]) for f in ack.flags] == [("baseline_unfavourable", draw.pk)]


def test_an_acknowledgement_takes_no_flags_from_its_caller(nurse, cycle):
    with pytest.raises(TypeError):
        services.acknowledge_cycle(cycle=cycle, by=nurse, note="Seen", flags=[])


def test_the_page_and_the_api_acknowledge_the_same_flags(
    client, api, oncologist, nurse, patient, cycle
):
    _unfavourable_draw(patient, oncologist)
    client.force_login(nurse)
    api.force_authenticate(nurse)

    client.post(f"/cycles/{cycle.pk}/acknowledge/", {"note": "Seen on the page"})
    api.post(f"/api/v1/cycles/{cycle.pk}/acknowledgements/", {"note": "Seen in the API"})

    by_page, by_api = cycle.acknowledgements.order_by("id")
    assert by_page.flags == by_api.flags != []


# --- the worklist ---------------------------------------------------------------------


def test_a_worklist_page_is_the_cycles_due_in_the_worklist_order(oncologist, patient, cycle):
    later = services.plan_cycle(
        line=cycle.therapy_line, by=oncologist, number=2, scheduled_date=date(2026, 1, 6)
    )
    _unfavourable_draw(patient, oncologist)  # flags cycle 1 (its window), not cycle 2

    shown = assessment.worklist_page(
        date(2026, 1, 5), 7, lambda due: Paginator(due, 1).get_page(2), among=None
    )

    assert [c.pk for c in shown.page] == [later.pk]
    assert [i.cycle.pk for i in shown.items] == [later.pk]
    everything = assessment.worklist(date(2026, 1, 5), 7)
    assert [i.cycle.pk for i in everything] == [cycle.pk, later.pk]
    assert everything == sorted(everything, key=assessment.worklist_order)


def test_the_worklist_order_is_the_rules_order_within_a_patient(oncologist, patient, cycle):
    for number, day in ((2, date(2026, 1, 8)), (3, date(2026, 1, 10)), (4, date(2026, 1, 20))):
        services.plan_cycle(
            line=cycle.therapy_line, by=oncologist, number=number, scheduled_date=day
        )
    _unfavourable_draw(patient, oncologist)  # review: cycles 1 and 2
    services.record_draw(  # favourable again, info: cycle 3; cycle 4 has no draw, review
        patient=patient, by=oncologist, drawn_at=datetime(2026, 1, 9, 9, tzinfo=UTC), ctc_count=1
    )

    def in_order() -> list[int]:
        items = assessment.worklist(date(2026, 1, 1), 30)
        by_rules = sorted(
            items, key=lambda i: rules.worklist_sort_key(i.assessment, i.acknowledged)
        )
        assert items == sorted(items, key=assessment.worklist_order) == by_rules
        return [i.cycle.number for i in items]

    assert in_order() == [1, 2, 4, 3]
    services.acknowledge_cycle(cycle=cycle, by=oncologist, note="Seen")
    # Cycles 1 and 2 show the same sample: acknowledged, both go after cycle 4's missing
    # draw (still waiting) and before cycle 3's info flag.
    assert in_order() == [4, 1, 2, 3]


# --- the CSV import ---------------------------------------------------------------------


def _import_events() -> list[tuple[str, str]]:
    return list(
        AccessEvent.objects.filter(action="import")
        .order_by("id")
        .values_list("user__username", "target")
    )


def test_the_command_and_the_page_each_log_one_import(
    client, oncologist, patient, tmp_path, django_user_model
):
    text = HEADER + "MRN0001,2026-01-02 09:30,,resulted,3,A-1,\n"
    path = tmp_path / "one.csv"
    path.write_text(text)
    call_command("import_ctc", str(path), stdout=StringIO(), stderr=StringIO())
    client.force_login(oncologist)
    page_file = tmp_path / "two.csv"
    page_file.write_text(HEADER + "MRN0001,2026-01-03 09:30,,resulted,4,A-2,\n")
    with page_file.open("rb") as upload:
        preview = client.post("/imports/csv/", {"file": upload})
    client.post("/imports/csv/confirm/", {"digest": preview.context["digest"]})

    assert _import_events() == [
        ("csv-import", "import_ctc one.csv: 1 draw added"),
        ("olivia", "CSV upload: 1 draw added"),
    ]
    assert CTCDraw.objects.count() == 2


def test_a_file_with_a_bad_row_imports_nothing_and_logs_nothing(oncologist, patient):
    text = HEADER + "MRN0001,2026-01-02 09:30,,resulted,3,A-1,\nMRN9999,2026-01-02,,x,,,\n"

    plan = importer.import_csv(text, by=oncologist, source="bad.csv", channel="test")

    assert not plan.ok
    assert (CTCDraw.objects.count(), _import_events()) == (0, [])
    with pytest.raises(ValueError):
        importer.import_plan(plan, by=oncologist, source="bad.csv", channel="test")


# --- splitting an edit -------------------------------------------------------------------


def test_an_edit_splits_into_changes_version_and_reason():
    data = {"ctc_count": 4, "comment": "", "version": 3, "reason": "Typo"}

    assert services.split_edit(data) == ({"ctc_count": 4, "comment": ""}, 3, "Typo")
    assert services.split_edit(data, changed=["ctc_count"]) == ({"ctc_count": 4}, 3, "Typo")
    assert services.split_edit({"status": "given"}) == ({"status": "given"}, None, "")


def test_the_page_and_the_api_say_the_same_when_a_note_is_missing(client, api, nurse, cycle):
    client.force_login(nurse)
    api.force_authenticate(nurse)

    page = client.post(f"/cycles/{cycle.pk}/acknowledge/", {"note": ""}, follow=True)
    answer = api.post(f"/api/v1/cycles/{cycle.pk}/acknowledgements/", {"note": ""})

    assert "Write a note saying what you checked or did." in page.content.decode()
    assert answer.json()["note"] == ["Write a note saying what you checked or did."]
    assert cycle.acknowledgements.count() == 0
