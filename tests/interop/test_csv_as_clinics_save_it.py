"""CSV files as Excel and LibreOffice save them, through the command and the upload page.

Each test reads the bytes a spreadsheet writes (the files in tests/data/csv, or
written here byte for byte): encodings, delimiters, re-saved dates, extra
columns, accessions shortened to scientific notation, broken quoting, and
files too large to check within a request.
"""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from pytest_django.asserts import assertContains, assertNotContains

from patients import services
from patients.interop.csv import importer, imports
from patients.models import AccessAction, AccessEvent, CTCDraw, Patient
from tests import builders
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

DATA = SAMPLES / "csv"
HEADER = b"mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\r\n"


@pytest.fixture
def signed_in(client, oncologist):
    client.force_login(oncologist)
    return client


def _command(path: Path) -> str:
    out = StringIO()
    call_command("import_ctc", str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


def _command_error(path: Path) -> str:
    with pytest.raises(CommandError) as info:
        call_command("import_ctc", str(path), stdout=StringIO(), stderr=StringIO())
    return str(info.value)


def _upload(client, name: str, content: bytes):
    return client.post("/imports/csv/", {"file": SimpleUploadedFile(name, content, "text/csv")})


def _file(tmp_path: Path, content: bytes, name: str = "clinic.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _comments() -> list[str]:
    return list(CTCDraw.objects.order_by("drawn_at").values_list("comment", flat=True))


# --- encodings ----------------------------------------------------------------------------


def test_excels_windows_csv_is_read_as_windows_1252(patient):
    out = _command(DATA / "excel-windows-1252.csv")

    assert "2 to add" in out and "Read as Windows-1252 text" in out
    assert _comments() == ["Prélevé par Hélène; facturé 12 €", "Tube hémolysé, refait"]


def test_the_preview_says_the_windows_file_was_read_as_windows_1252(signed_in, patient):
    r = _upload(signed_in, "x.csv", (DATA / "excel-windows-1252.csv").read_bytes())

    assertContains(r, "Read as Windows-1252 text, values separated by commas")
    assertContains(r, "Prélevé par Hélène; facturé 12 €")
    assertContains(r, "Import 2 draws")


def test_excel_for_macs_csv_is_read_as_mac_roman(patient):
    # "CSV (Macintosh)": Mac Roman, each line ending with CR alone.
    out = _command(DATA / "excel-mac-roman.csv")

    assert "2 to add" in out and "Read as Mac Roman text" in out
    assert _comments() == ["Prélevé par Hélène; facturé 12 €", "Tube hémolysé, refait – ŒUVRE"]


def test_the_preview_says_the_mac_file_was_read_as_mac_roman(signed_in, patient):
    r = _upload(signed_in, "x.csv", (DATA / "excel-mac-roman.csv").read_bytes())

    assertContains(r, "Read as Mac Roman text, values separated by commas")
    assertContains(r, "Prélevé par Hélène; facturé 12 €")


def test_mac_roman_letters_are_never_read_as_windows_punctuation(patient, tmp_path):
    # These bytes are valid Windows-1252 too ("hŽmolysŽ"): the CR line ends decide.
    content = (
        HEADER.replace(b"\r\n", b"\r") + b"MRN0001,2026-01-02 09:30,,resulted,3,,h\x8emolys\x8e\r"
    )

    _command(_file(tmp_path, content))

    assert _comments() == ["hémolysé"]


def test_excel_for_macs_csv_utf8_with_cr_line_ends_is_read_as_utf8(patient, tmp_path):
    content = (
        "\ufeffmrn,drawn_at,status,ctc_count,comment\rMRN0001,2026-01-02 09:30,resulted,3,Hélène\r"
    )

    out = _command(_file(tmp_path, content.encode("utf-8")))

    assert "Read as UTF-8 text" in out
    assert _comments() == ["Hélène"]


def test_excels_unicode_text_utf16_with_tabs_is_read(patient):
    out = _command(DATA / "excel-unicode-text.txt")

    assert "2 to add" in out and "Read as UTF-16 text, values separated by tabs" in out
    first, second = CTCDraw.objects.order_by("drawn_at")
    assert (first.ctc_count, first.blood_volume_ml) == (4, Decimal("10"))
    assert first.comment == "Łódź lab, 12 € ✓"
    assert (second.count_qualifier, second.ctc_count) == (">", 1000)


def test_the_page_reads_unicode_text_as_the_command_does(signed_in, patient):
    r = _upload(signed_in, "x.txt", (DATA / "excel-unicode-text.txt").read_bytes())

    assertContains(r, "Read as UTF-16 text, values separated by tabs")
    assertContains(r, "Import 2 draws")


def test_a_file_neither_utf8_nor_windows_1252_is_refused_saying_what_to_do(
    signed_in, patient, tmp_path
):
    content = HEADER + b"MRN0001,2026-01-02 09:30,,resulted,3,,\x81\x8d\r\n"  # not in cp1252

    r = _upload(signed_in, "x.csv", content)
    message = _command_error(_file(tmp_path, content))

    assertContains(r, "save it as &quot;CSV UTF-8", status_code=400)
    assert "neither UTF-8 nor Windows-1252" in message and "CSV UTF-8" in message
    assert not CTCDraw.objects.exists()


def test_a_truncated_utf16_file_is_refused_not_a_server_error(signed_in, patient):
    content = (DATA / "excel-unicode-text.txt").read_bytes()[:-1]  # an odd number of bytes

    r = _upload(signed_in, "x.txt", content)

    assertContains(r, "not valid UTF-16", status_code=400)


# --- delimiters ----------------------------------------------------------------------------


def test_semicolons_and_decimal_commas_of_european_excel_are_read(patient):
    out = _command(DATA / "excel-semicolons-decimal-comma.csv")

    assert "2 to add" in out and "separated by semicolons" in out
    volumes = CTCDraw.objects.order_by("drawn_at").values_list("blood_volume_ml", flat=True)
    assert list(volumes) == [Decimal("7.5"), Decimal("4.5")]
    assert _comments() == ["Prélèvement à jeun", "court; 4,5 mL"]


def test_a_decimal_comma_in_a_comma_separated_file_is_refused_with_a_hint(patient, tmp_path):
    content = HEADER + b'MRN0001,2026-01-02 09:30,"4,5",resulted,3,,\r\n'

    message = _command_error(_file(tmp_path, content))

    assert "line 2, blood_volume_ml: '4,5' is not a number (write the decimals after a point" in (
        message
    )


# --- dates as spreadsheets re-save them ---------------------------------------------------


@pytest.mark.parametrize("name", ["excel-day-first.csv", "excel-month-first.csv"])
def test_re_saved_dates_are_refused_saying_how_to_format_the_column(patient, name):
    message = _command_error(DATA / name)

    assert "line 2, drawn_at:" in message and "line 3, drawn_at:" in message
    assert "format the drawn_at column as yyyy-mm-dd hh:mm" in message
    assert "2026-12-03 08:30" in message
    assert not CTCDraw.objects.exists()


@pytest.mark.parametrize(
    "date_format, name",
    [("day-first", "excel-day-first.csv"), ("month-first", "excel-month-first.csv")],
)
def test_the_clinics_date_format_setting_reads_its_dates(patient, settings, date_format, name):
    settings.CTCTRACK_CSV_DATE_FORMAT = date_format

    _command(DATA / name)

    times = CTCDraw.objects.order_by("drawn_at").values_list("drawn_at", flat=True)
    assert list(times) == [
        datetime(2026, 1, 2, 9, 30, tzinfo=UTC),  # clinic time (UTC in the tests)
        datetime(2026, 1, 23, 14, 5, tzinfo=UTC),
    ]


def test_a_day_first_date_that_does_not_exist_is_named(patient, settings, tmp_path):
    settings.CTCTRACK_CSV_DATE_FORMAT = "day-first"
    content = HEADER + b"MRN0001,12/31/2025 09:30,,resulted,3,,\r\n"  # month-first by mistake

    message = _command_error(_file(tmp_path, content))

    assert "'12/31/2025 09:30' is not a date and time that exists (read as day/month/year)" in (
        message
    )


@pytest.mark.parametrize("value", ["2026-01-02", "02/01/2026", "20260102"])
def test_a_date_without_a_time_is_refused_never_stored_as_midnight(patient, tmp_path, value):
    content = HEADER + f"MRN0001,{value},,resulted,3,,\r\n".encode()

    message = _command_error(_file(tmp_path, content))

    assert f"line 2, drawn_at: '{value}'" in message
    assert not CTCDraw.objects.exists()


def test_a_spreadsheet_day_number_is_refused_with_the_hint(patient, tmp_path):
    content = HEADER + b"MRN0001,46024.39583,,resulted,3,,\r\n"

    message = _command_error(_file(tmp_path, content))

    assert "'46024.39583' is a spreadsheet's number for a date" in message
    assert "format the drawn_at column as yyyy-mm-dd hh:mm" in message


# --- clinic time at the clock changes ------------------------------------------------------


def test_a_time_skipped_when_the_clocks_go_forward_is_refused(patient, settings, tmp_path):
    settings.TIME_ZONE = "Europe/Paris"
    content = HEADER + b"MRN0001,2026-03-29 02:30,,resulted,3,,\r\n"

    message = _command_error(_file(tmp_path, content))

    assert (
        "line 2, drawn_at: 2026-03-29 02:30 does not exist in the clinic's time zone "
        "(Europe/Paris): the clocks went forward then"
    ) in message


def test_a_time_met_twice_when_the_clocks_go_back_is_refused_with_both_offsets(
    patient, settings, tmp_path
):
    settings.TIME_ZONE = "Europe/Paris"
    content = HEADER + b"MRN0001,2026-10-25 02:30,,resulted,3,,\r\n"

    message = _command_error(_file(tmp_path, content))

    assert "2026-10-25 02:30 happened twice in the clinic's time zone (Europe/Paris)" in message
    assert "2026-10-25T02:30+02:00 or 2026-10-25T02:30+01:00" in message


def test_a_time_at_the_clock_change_with_its_offset_is_imported(patient, settings, tmp_path):
    settings.TIME_ZONE = "Europe/Paris"
    content = HEADER + b"MRN0001,2026-10-25T02:30+01:00,,resulted,3,,\r\n"

    _command(_file(tmp_path, content))

    assert CTCDraw.objects.get().drawn_at == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


# --- columns --------------------------------------------------------------------------------


def test_an_unknown_column_is_refused_with_the_accepted_names(signed_in, patient, tmp_path):
    content = (
        b"mrn,drawn_at,Blood volume (mL),status,ctc_count,accession\r\n"
        b"MRN0001,2026-01-02 09:30,4.5,resulted,3,CS-1\r\n"
    )

    message = _command_error(_file(tmp_path, content))
    r = _upload(signed_in, "x.csv", content)

    expected = (
        "line 1, header: unknown column 'Blood volume (mL)': the columns are mrn, drawn_at, "
        "status, ctc_count (required) and blood_volume_ml, count_qualifier, accession, comment "
        "(optional)"
    )
    assert expected in message
    assertContains(r, "unknown column &#x27;Blood volume (mL)&#x27;", status_code=400)
    assert not CTCDraw.objects.exists()  # never a 4.5 mL draw stored as 7.5


def test_header_messages_name_one_column_or_several_in_words_that_agree(patient, tmp_path):
    two_unknown = (
        b"mrn,drawn_at,status,ctc_count,Volume,Tube\r\nMRN0001,2026-01-02 09:30,resulted,3,4,A\r\n"
    )
    one_missing = b"mrn,drawn_at,status\r\nMRN0001,2026-01-02 09:30,resulted\r\n"

    assert "unknown columns 'Volume', 'Tube':" in _command_error(_file(tmp_path, two_unknown))
    assert "missing column: ctc_count" in _command_error(_file(tmp_path, one_missing))


def test_a_column_named_twice_is_refused(patient, tmp_path):
    content = (
        b"mrn,drawn_at,status,ctc_count,ctc_count\r\nMRN0001,2026-01-02 09:30,resulted,3,4\r\n"
    )

    assert "column named more than once: ctc_count" in _command_error(_file(tmp_path, content))


def test_empty_columns_a_spreadsheet_adds_at_the_end_are_allowed_when_empty(patient, tmp_path):
    content = (
        b"mrn,drawn_at,status,ctc_count,,\r\n"
        b"MRN0001,2026-01-02 09:30,resulted,3,,\r\n"
        b"MRN0001,2026-01-03 09:30,resulted,4,,stray\r\n"
    )

    message = _command_error(_file(tmp_path, content))

    assert "line 3, row: a value in a column with no name in the header" in message
    assert "line 2" not in message


# --- accessions -----------------------------------------------------------------------------


def test_a_new_accession_at_the_time_and_count_of_a_recorded_draw_is_a_tube_of_its_own(
    signed_in, patient, oncologist, tmp_path
):
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="CS-TUBE-1",
    )
    content = HEADER + b"MRN0001,2026-01-02 09:30,7.5,resulted,3,CS-TUBE-2,\r\n"

    preview = _upload(signed_in, "x.csv", content)
    out = _command(_file(tmp_path, content))

    assertContains(preview, "Import 1 draw<")
    assertContains(preview, "adds another tube to that sample")
    assert "1 to add, 0 already recorded" in out
    assert sorted(CTCDraw.objects.values_list("accession", flat=True)) == [
        "CS-TUBE-1",
        "CS-TUBE-2",
    ]


def test_a_row_without_accession_but_another_volume_is_not_already_recorded(
    patient, oncologist, tmp_path
):
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC))
    content = HEADER + b"MRN0001,2026-01-02 09:30,4.5,resulted,3,,\r\n"

    out = _command(_file(tmp_path, content))

    assert "1 to add, 0 already recorded" in out


@pytest.mark.parametrize("column", ["accession", "mrn"])
def test_a_number_in_scientific_notation_is_refused_with_a_hint(patient, tmp_path, column):
    mrn, accession = ("MRN0001", "2.09231E+11") if column == "accession" else ("1.2E+07", "A1")
    content = HEADER + f"{mrn},2026-01-02 09:30,,resulted,3,{accession},\r\n".encode()

    message = _command_error(_file(tmp_path, content))

    assert f"line 2, {column}: " in message
    assert "shortened to scientific notation" in message and "format the column as Text" in message


# --- files the csv module gives up on, and limits --------------------------------------------


def test_a_field_over_the_csv_modules_limit_is_a_row_error_not_a_server_error(
    signed_in, patient, tmp_path
):
    content = HEADER + b"MRN0001,2026-01-02 09:30,,resulted,3,,"
    content += b'"' + b"x" * (csv.field_size_limit() + 10) + b'"\r\n'

    r = _upload(signed_in, "x.csv", content)
    message = _command_error(_file(tmp_path, content))

    expected = f"a value is longer than {csv.field_size_limit():,} characters"
    assertContains(r, expected, status_code=400)
    assert f"line 2, row: {expected}" in message


def test_an_unterminated_quote_is_a_row_error_naming_its_line(signed_in, patient, tmp_path):
    content = (
        HEADER
        + b"MRN0001,2026-01-02 09:30,,resulted,3,A1,fine\r\n"
        + b'MRN0001,2026-01-03 09:30,,resulted,3,A2,"never closed\r\n'
        + b"MRN0001,2026-01-04 09:30,,resulted,3,A3,\r\n"
    )

    r = _upload(signed_in, "x.csv", content)
    message = _command_error(_file(tmp_path, content))

    expected = 'line 3, row: a quote (") opened here is never closed'
    assert expected in message
    assertContains(r, "opened here is never closed", status_code=400)
    assert not CTCDraw.objects.exists()


def _bad_rows(count: int) -> bytes:
    return HEADER + b"".join(
        f"NOPE-{i},not a date,,resulted,-1,,\r\n".encode() for i in range(count)
    )


def test_the_preview_lists_a_few_hundred_errors_and_says_how_many_more(signed_in, patient):
    r = _upload(signed_in, "x.csv", _bad_rows(600))  # 2 errors per row

    assert r.status_code == 400
    assert r.content.count(b"<tr><td>") == 200
    assertContains(r, "and 800 more problems not listed here", status_code=400)
    assertContains(r, "Checking stopped at line 501 after 1,000 problems", status_code=400)
    assert len(r.content) < 200_000


def test_the_command_lists_as_many_errors_as_the_page(patient, tmp_path):
    message = _command_error(_file(tmp_path, _bad_rows(600)))

    assert message.count("\n  line ") == 200
    assert "and 800 more problems not listed" in message
    assert "Checking stopped at line 501" in message


def test_a_file_with_more_rows_than_the_setting_allows_is_refused(signed_in, patient, settings):
    settings.CTCTRACK_CSV_MAX_ROWS = 3
    rows = b"".join(
        f"MRN0001,2026-01-0{day} 09:30,,resulted,3,A{day},\r\n".encode() for day in range(1, 5)
    )

    r = _upload(signed_in, "x.csv", HEADER + rows)

    assertContains(r, "more than 3 rows: split the file into smaller ones", status_code=400)
    assertNotContains(r, "/imports/csv/confirm/", status_code=400)


def test_checking_stops_with_a_message_when_it_takes_longer_than_the_setting(
    signed_in, patient, settings
):
    settings.CTCTRACK_CSV_MAX_SECONDS = 0  # any file takes longer than that
    content = HEADER + b"MRN0001,2026-01-02 09:30,,resulted,3,A1,\r\n"

    r = _upload(signed_in, "x.csv", content)

    assertContains(r, "checking took more than 0 s: split the file", status_code=400)
    assertContains(r, "it took too long", status_code=400)


def test_saving_past_the_time_limit_rolls_the_whole_import_back(patient, oncologist):
    plan = importer.plan_csv(
        HEADER.decode() + "MRN0001,2026-01-02 09:30,,resulted,3,A1,\r\n", by=oncologist
    )
    assert plan.ok and len(plan.new) == 1
    spent = imports.Limits(max_seconds=0)  # already past: saving stops after its first batch

    with pytest.raises(importer.ImportTooLong) as stopped:
        importer.import_plan(plan, by=oncologist, source="x.csv", channel="test", limits=spent)

    assert str(stopped.value) == (
        "Importing took more than 0 s, checking and saving together: nothing was imported. "
        "Split the file into smaller ones, or import it with the command (manage.py import_ctc)."
    )
    assert not CTCDraw.objects.exists()  # the batch written before the limit was rolled back
    assert not AccessEvent.objects.filter(action=AccessAction.IMPORT).exists()


def test_the_page_stops_an_import_whose_saving_runs_past_the_limit(
    signed_in, patient, settings, monkeypatch
):
    settings.CTCTRACK_CSV_MAX_SECONDS = 1
    preview = _upload(signed_in, "x.csv", HEADER + b"MRN0001,2026-01-02 09:30,,resulted,3,A1,\r\n")
    import_draws = services.import_draws

    def slow_database(**kwargs):
        time.sleep(1.1)  # a database slower than the limit allows
        return import_draws(**kwargs)

    monkeypatch.setattr(services, "import_draws", slow_database)

    r = signed_in.post("/imports/csv/confirm/", {"digest": preview.context["digest"]}, follow=True)

    assertContains(r, "Importing took more than 1 s, checking and saving together")
    assert not CTCDraw.objects.exists()


# --- same-day duplicates ----------------------------------------------------------------------


def test_a_draw_on_a_day_the_patient_already_has_one_is_shown_before_confirming(
    signed_in, patient, oncologist
):
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, 8, 30, tzinfo=UTC))
    content = HEADER + b"MRN0001,2026-01-02 14:00,,resulted,6,CS-PM,\r\n"

    preview = _upload(signed_in, "x.csv", content)
    assertContains(preview, "Check before importing: 1 draw on the same day")
    assertContains(
        preview, "MRN0001 already has a draw that day, at 2 Jan 2026 08:30 (3 CTC in 7.5 mL, no"
    )
    assert CTCDraw.objects.count() == 1  # nothing yet

    r = signed_in.post("/imports/csv/confirm/", {"digest": preview.context["digest"]}, follow=True)

    assertContains(r, "Imported 1 draw from")
    assert CTCDraw.objects.count() == 2


def test_two_rows_of_the_file_on_one_day_at_different_times_are_shown(patient, tmp_path):
    content = HEADER + (
        b"MRN0001,2026-01-02 08:30,,resulted,3,CS-A,\r\n"
        b"MRN0001,2026-01-02 08:30,,resulted,2,CS-B,\r\n"  # a second tube: no warning
        b"MRN0001,2026-01-02 16:00,,resulted,3,CS-C,\r\n"
    )

    out = _command(_file(tmp_path, content))

    assert "line 4, drawn_at: line 2 is a draw of MRN0001 the same day at 2 Jan 2026 08:30" in out
    assert "line 3" not in out
    assert CTCDraw.objects.count() == 3  # a warning, not an error


def test_a_draw_entered_after_the_preview_brings_the_preview_back_instead_of_importing(
    signed_in, patient, oncologist
):
    content = HEADER + b"MRN0001,2026-01-02 14:00,,resulted,6,CS-PM,\r\n"
    preview = _upload(signed_in, "x.csv", content)
    assertNotContains(preview, "Check before importing")
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, 8, 30, tzinfo=UTC))

    r = signed_in.post("/imports/csv/confirm/", {"digest": preview.context["digest"]})

    assertContains(r, "The record has changed since the file was checked")
    assertContains(r, "already has a draw that day")
    assert CTCDraw.objects.count() == 1
    again = signed_in.post("/imports/csv/confirm/", {"digest": preview.context["digest"]})
    assert again.status_code == 302  # seen now: confirmed
    assert CTCDraw.objects.count() == 2


def test_same_day_warnings_do_not_stop_other_patients_rows(patient, oncologist, tmp_path):
    other = builders.patient(oncologist, mrn="MRN0002", given_name="John", family_name="Roe")
    builders.draw(other, oncologist, drawn_at=datetime(2026, 1, 2, 8, 30, tzinfo=UTC))
    content = HEADER + b"MRN0001,2026-01-02 14:00,,resulted,6,CS-PM,\r\n"

    out = _command(_file(tmp_path, content))

    assert "Check" not in out
    assert Patient.objects.get(mrn="MRN0001").draws.count() == 1


# --- CTC Track's own export -------------------------------------------------------------------


def test_ctc_tracks_own_export_imports_as_it_was_and_its_errors_are_refused(
    signed_in, patient, oncologist, tmp_path
):
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC))
    wrong = builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 9, 9, 30, tzinfo=UTC))
    exported = b"".join(signed_in.get(f"/patients/{patient.pk}/draws.csv").streaming_content)
    path = _file(tmp_path, exported)

    assert "0 to add, 2 already recorded" in _command(path)  # every column of it known

    services.mark_draw_entered_in_error(
        draw=wrong, by=oncologist, reason="wrong patient", version=builders.version_of(wrong)
    )
    exported = b"".join(signed_in.get(f"/patients/{patient.pk}/draws.csv").streaming_content)
    message = _command_error(_file(tmp_path, exported))

    assert "line 3, entered_in_error: this draw was entered in error: remove the row" in message


def test_many_rows_of_one_patient_on_one_day_are_checked_well_within_the_time_limit(
    patient, oncologist, settings
):
    # Comparing each row with every earlier row of its day took minutes for such a file.
    settings.CTCTRACK_CSV_MAX_SECONDS = 20
    rows = "".join(
        f"MRN0001,2026-01-02 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},,resulted,3,T-{i},\n"
        for i in range(30_000)
    )

    plan = importer.plan_csv(HEADER.decode() + rows, by=oncologist)

    assert plan.ok, plan.errors[:3]
    assert (len(plan.new), len(plan.warnings)) == (30_000, 29_999)
