"""The CSV upload page (preview, then confirm) and the CSV exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pytest_django.asserts import assertContains, assertNotContains

from patients.interop.csv.exports import HEADER
from patients.models import AccessEvent, CTCDraw
from tests import builders
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

# The full export asks why, and for a confirmation (both go in the access log).
EXPORT_ALL = {"reason": "Quarterly audit", "confirm": "on"}

DATA = SAMPLES / "csv"


@pytest.fixture
def second_patient(oncologist):
    return builders.patient(
        oncologist, mrn="MRN0002", given_name="John", family_name="Roe", cancer_type="prostate"
    )


def _upload(client, name: str):
    content = (DATA / name).read_bytes()
    return client.post("/imports/csv/", {"file": SimpleUploadedFile(name, content, "text/csv")})


def _rows(response) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_nurses_and_users_without_a_role_cannot_import_or_export(client, nurse, outsider, patient):
    for user in (nurse, outsider):
        client.force_login(user)
        assert client.get("/imports/csv/").status_code == 403
        assert _upload(client, "good.csv").status_code == 403
        assert client.get("/exports/draws.csv").status_code == 403
        assert client.post("/exports/draws.csv", EXPORT_ALL).status_code == 403
        assert client.get(f"/patients/{patient.pk}/draws.csv").status_code == 403


def test_the_preview_shows_what_will_be_added_and_saves_nothing(
    client, oncologist, patient, second_patient
):
    client.force_login(oncologist)

    r = _upload(client, "good.csv")

    assertContains(r, "<strong>4</strong> draws to add")
    assertContains(r, "CS-0002")
    assertContains(r, "Import 4 draws")
    assert not CTCDraw.objects.exists()


def test_confirming_imports_the_rows_as_the_signed_in_oncologist(
    client, oncologist, patient, second_patient
):
    client.force_login(oncologist)
    preview = _upload(client, "good.csv")

    r = client.post("/imports/csv/confirm/", {"digest": preview.context["digest"]}, follow=True)

    assertContains(r, "Imported 4 draws from good.csv")
    assert CTCDraw.objects.count() == 4
    assert set(CTCDraw.objects.values_list("entered_by__username", flat=True)) == {"olivia"}


def test_a_bad_file_lists_every_bad_row_and_offers_no_import(client, oncologist, patient):
    client.force_login(oncologist)

    r = _upload(client, "bad.csv")

    assert r.status_code == 400
    assertContains(r, "Nothing was saved", status_code=400)
    assertContains(r, "no patient with MRN &#x27;NOPE-9&#x27;", status_code=400)
    assertContains(r, "is in the future", status_code=400)
    assertNotContains(r, "/imports/csv/confirm/", status_code=400)


def test_a_stale_or_forged_confirmation_imports_nothing(client, oncologist, patient):
    client.force_login(oncologist)
    _upload(client, "good.csv")

    r = client.post("/imports/csv/confirm/", {"digest": "0" * 64}, follow=True)

    assertContains(r, "no longer waiting")
    assert not CTCDraw.objects.exists()


def test_a_latin1_file_is_read_as_windows_1252_and_the_preview_says_so(client, oncologist):
    client.force_login(oncologist)
    latin1 = SimpleUploadedFile("x.csv", "mrn,drawn_at\nM\xe9,1\n".encode("latin-1"), "text/csv")

    r = client.post("/imports/csv/", {"file": latin1})

    assertContains(r, "Read as Windows-1252 text", status_code=400)
    assertContains(r, "missing columns: status, ctc_count", status_code=400)


def test_the_patient_export_lists_draws_with_rate_category_and_flags(client, oncologist, patient):
    for day, count in [(2, 2), (23, 9)]:
        builders.draw(
            patient,
            oncologist,
            drawn_at=date(2026, 1, day),
            ctc_count=count,
            comment='=HYPERLINK("http://evil")' if day == 23 else "",
        )
    client.force_login(oncologist)

    r = client.get(f"/patients/{patient.pk}/draws.csv")

    assert r["Content-Type"] == "text/csv; charset=utf-8"
    assert "MRN" not in r["Content-Disposition"]
    rows = _rows(r)
    assert list(rows[0]) == HEADER
    assert [(row["ctc_count"], row["category"]) for row in rows] == [
        ("2", "favourable"),
        ("9", "unfavourable"),
    ]
    assert rows[1]["flags"] == "conversion_to_unfavourable;rise_beyond_noise"
    assert rows[1]["rate_per_7_5_ml"] == "9"
    assert (rows[1]["ci95_low"], rows[1]["ci95_high"]) == ("4.1", "17.1")  # as printed
    assert rows[1]["p_at_or_above_cutoff"] == "0.953"  # Q(9.5, 5): clear, so the flag is high
    assert (rows[1]["sample_tubes"], rows[1]["sample_count"]) == ("1", "9")
    assert rows[1]["comment"].startswith("'=")  # never runs as a spreadsheet formula


def test_the_export_gives_each_tube_its_sample_and_a_lower_bound_no_upper_limit(
    client, oncologist, patient
):
    drawn_at = date(2026, 1, 2)
    builders.draw(patient, oncologist, drawn_at=drawn_at, ctc_count=4)
    builders.draw(patient, oncologist, drawn_at=drawn_at, ctc_count=6)
    builders.draw(
        patient, oncologist, drawn_at=date(2026, 1, 23), ctc_count=1000, count_qualifier=">"
    )
    client.force_login(oncologist)

    rows = _rows(client.get(f"/patients/{patient.pk}/draws.csv"))

    pooled = [
        (r["ctc_count"], r["sample_tubes"], r["sample_count"], r["sample_volume_ml"])
        for r in rows[:2]
    ]
    assert pooled == [("4", "2", "10", "15"), ("6", "2", "10", "15")]
    assert {r["rate_per_7_5_ml"] for r in rows[:2]} == {"5"}  # the sample's, on each tube
    assert rows[2]["count_qualifier"] == ">"
    assert rows[2]["sample_count"] == ">1000"
    assert rows[2]["ci95_high"] == ""
    assert rows[2]["p_at_or_above_cutoff"] == "1.000"


def test_the_full_export_covers_every_patient_in_a_fixed_number_of_queries(
    client, oncologist, patient, second_patient, count_queries
):
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, tzinfo=UTC), ctc_count=1)
    client.force_login(oncologist)
    client.post("/exports/draws.csv", EXPORT_ALL)

    def export() -> list[dict[str, str]]:
        return _rows(client.post("/exports/draws.csv", EXPORT_ALL))

    few = count_queries(export)
    for i in range(30):
        builders.draw(
            second_patient,
            oncologist,
            drawn_at=datetime(2026, 1, 3, i % 24, tzinfo=UTC)
            if i < 24
            else datetime(2026, 1, 4, i - 24, tzinfo=UTC),
            ctc_count=i,
        )
    many = count_queries(export)

    assert few == many
    assert [r["mrn"] for r in export()].count("MRN0002") == 30


def test_exports_and_imports_are_in_the_access_log(client, oncologist, patient, second_patient):
    client.force_login(oncologist)

    b"".join(client.get(f"/patients/{patient.pk}/draws.csv").streaming_content)
    b"".join(client.post("/exports/draws.csv", EXPORT_ALL).streaming_content)
    preview = _upload(client, "good.csv")
    client.post("/imports/csv/confirm/", {"digest": preview.context["digest"]})

    events = list(
        AccessEvent.objects.filter(action__in=["export", "import"])
        .order_by("id")  # in the order written (PostgreSQL may return them by index)
        .values_list("action", "patient_id", "user__username")
    )
    assert events == [
        ("export", patient.pk, "olivia"),
        ("export", None, "olivia"),
        ("import", None, "olivia"),
    ]


def test_the_full_export_asks_why_and_for_a_confirmation_and_logs_the_reason(
    client, oncologist, patient
):
    client.force_login(oncologist)

    asked = client.get("/exports/draws.csv")
    refused = client.post("/exports/draws.csv", {"reason": "", "confirm": ""})
    exported = client.post("/exports/draws.csv", {"reason": "Tumour board  audit", "confirm": "on"})

    assert asked["Content-Type"].startswith("text/html")
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "Why is this export needed?: Say why the export is needed." in body
    assert "Tick to confirm before exporting." in body
    assert exported["Content-Type"].startswith("text/csv")
    b"".join(exported.streaming_content)
    assert list(AccessEvent.objects.filter(action="export").values_list("target", flat=True)) == [
        "CSV of all patients' draws; reason: Tumour board audit"
    ]


def test_the_full_export_is_not_in_the_everyday_menu(client, oncologist):
    client.force_login(oncologist)

    page = client.get("/").content.decode()

    nav = page.split('class="main-nav"')[1].split("</nav>")[0]
    assert "/exports/draws.csv" not in nav
    assert "/exports/draws.csv" in page.split('class="site-footer"')[1]
