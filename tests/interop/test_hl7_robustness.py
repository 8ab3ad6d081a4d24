"""HL7 v2 in: messages as real interfaces write them, and what the ACK says back.

Byte-order marks, Windows-1252, other delimiters, date-only times, clock
changes, counts written `7.0`, over-long accessions, processing IDs; the
parser directly where no record is needed, the endpoint and the command where
the record or the access log is the point.
"""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from patients.interop.hl7.ack import AckCode, ErrorCode
from patients.interop.hl7.parse import ACCESSION_MAX_LENGTH, ParsedMessage, parse_message
from patients.interop.hl7.parse import split_body as split
from patients.interop.hl7.values import parse_timestamp
from patients.models import AccessAction, AccessEvent, CTCDraw
from tests.paths import DATA as SAMPLES

DATA = SAMPLES / "hl7"
URL = "/api/v1/hl7/oru/"
CODES = frozenset({"67568-6"})
BERLIN = ZoneInfo("Europe/Berlin")

MSH = r"MSH|^~\&|LIS|CITYLAB|CTCTRACK|ONCOLOGY|20260302141502+0100||ORU^R01^ORU_R01|M1|P|2.5.1"
PID = "PID|1||MRN0001^^^GENHOSP^MR||Doe^Jane||19600517|F"
OBR = "OBR|1|ORD-1|CS-1|67568-6^CTC^LN|||20260301083000+0100"
SPM = "SPM|1|CS-1||119297000^Blood^SCT" + "|" * 13 + "20260301081000+0100"


def _obx(value: str = "7", *, when: str = "") -> str:
    return f"OBX|1|NM|67568-6^CTC^LN|1|{value}|cells/7.5 mL|<5||||F|||{when}"


def _parse(*segments: str, tz=UTC) -> ParsedMessage:
    return parse_message("\r".join(segments), loinc_codes=CODES, tz=tz)


def _post(api, body: bytes):
    return api.generic("POST", URL, data=body, content_type="text/plain")


def _segments(response) -> list[list[str]]:
    return [s.split("|") for s in response.content.decode().split("\r") if s]


def _msa(response) -> list[list[str]]:
    return [s for s in _segments(response) if s[0] == "MSA"]


# --- bytes and delimiters ------------------------------------------------------------


@pytest.mark.django_db
def test_a_windows_file_with_a_byte_order_mark_and_windows_1252_text_is_stored(
    api, oncologist, patient
):
    api.force_authenticate(oncologist)

    r = _post(api, (DATA / "oru_r01_windows_bom_cp1252.hl7").read_bytes())

    assert _msa(r)[0][1:3] == ["AA", "NL-0412"]
    draw = CTCDraw.objects.get()
    assert draw.comment == "Tube labelled \u201cCellSave\u201d \u2013 courier fee \u20ac12 waived."


def test_a_byte_order_mark_before_each_message_of_a_batch_is_dropped():
    message = "\r".join([MSH, PID, OBR, _obx()])
    body = ("\ufeff" + message + "\r\ufeff" + message.replace("|M1|", "|M2|")).encode()

    texts = split(body).messages

    assert [t[:3] for t in texts] == ["MSH", "MSH"]


def test_bytes_that_are_not_windows_1252_either_are_read_as_latin_1():
    body = "\r".join([MSH, PID, OBR, _obx(), "NTE|1|L|x"]).encode() + b"\x81"

    assert split(body).messages[0].endswith("NTE|1|L|x\x81")


@pytest.mark.django_db
def test_the_ack_is_written_in_our_delimiters_whatever_the_sender_used(api, oncologist, patient):
    api.force_authenticate(oncologist)
    message = "\r".join(
        [
            "MSH#@~\\&#LIS@LAB-1#CITYLAB@2.999.55@ISO#CTCTRACK#ONCOLOGY@2.999.1@ISO"
            "#20260302141502+0100##ORU@R01@ORU_R01#M-77#P@T#2.5.1",
            "PID#1##MRN0001@@@GENHOSP@MR##Doe@Jane##19600517#F",
            "OBR#1#ORD-1#CS-1#67568-6@CTC@LN###20260301083000+0100",
            "OBX#1#NM#67568-6@CTC@LN#1#7#cells/7.5 mL#<5####F",
        ]
    )

    r = _post(api, message.encode())

    msh, msa = _segments(r)[:2]
    assert msh[1] == "^~\\&"
    assert (msh[2], msh[3], msh[4], msh[5]) == (
        "CTCTRACK",
        "ONCOLOGY^2.999.1^ISO",
        "LIS^LAB-1",
        "CITYLAB^2.999.55^ISO",
    )
    assert msh[10] == "P^T"  # MSH-11 as received, in our delimiters
    assert msa[1:3] == ["AA", "M-77"]


@pytest.mark.django_db
@pytest.mark.parametrize("processing", ["T", "D", "T^A"])
def test_training_and_debugging_messages_are_refused_and_the_ack_carries_their_msh_11(
    api, oncologist, patient, processing
):
    api.force_authenticate(oncologist)
    msh = MSH.replace("|M1|P|", f"|M1|{processing}|")

    r = _post(api, "\r".join([msh, PID, OBR, _obx()]).encode())

    msh_out, msa = _segments(r)[:2]
    assert (msh_out[10], msa[1]) == (processing, "AR")
    assert not CTCDraw.objects.exists()


# --- counts --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["7.0", "+7", "7.", " +7.00 ", "007"])
def test_a_whole_number_written_with_a_sign_or_a_decimal_zero_is_that_number(value):
    (result,) = _parse(MSH, PID, OBR, _obx(value)).results

    assert result.ctc_count == 7


@pytest.mark.parametrize("value", ["7.5", "7.05", "-7", "+", "7e0"])
def test_a_count_that_is_not_a_whole_number_stays_refused(value):
    parsed = _parse(MSH, PID, OBR, _obx(value))

    assert parsed.ack_code is AckCode.ERROR
    assert parsed.problems[0].code is ErrorCode.DATA_TYPE_ERROR


# --- draw times ----------------------------------------------------------------------


def test_a_date_only_obx_14_gives_way_to_obr_7():
    (result,) = _parse(MSH, PID, OBR, _obx(when="20260301")).results

    assert result.drawn_at == datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    assert result.location_of("drawn_at") == "OBR^1^7"


def test_date_only_obx_14_and_obr_7_give_way_to_spm_17():
    obr = OBR.replace("20260301083000+0100", "20260301")

    (result,) = _parse(MSH, PID, obr, _obx(when="20260301"), SPM).results

    assert result.drawn_at == datetime(2026, 3, 1, 7, 10, tzinfo=UTC)
    assert result.location_of("drawn_at") == "SPM^1^17"


def test_dates_without_a_time_everywhere_are_refused_naming_the_first():
    obr = OBR.replace("20260301083000+0100", "20260301")

    parsed = _parse(MSH, PID, obr, _obx(when="20260301+0100"))

    (problem,) = parsed.problems
    assert (problem.location, problem.code) == ("OBX^1^14", ErrorCode.DATA_TYPE_ERROR)
    assert problem.text == (
        "OBX-14 and OBR-7 give a date without a time ('20260301+0100') and no other field "
        "has the time: send the draw time as YYYYMMDDHHMM[SS][+/-ZZZZ]."
    )


@pytest.mark.parametrize(
    ("local", "words"),
    [("202603290230", "does not exist"), ("202610250230", "happened twice")],
)
def test_a_local_time_skipped_or_repeated_at_a_clock_change_is_refused(local, words):
    obr = OBR.replace("20260301083000+0100", local)

    (problem,) = _parse(MSH, PID, obr, _obx(), tz=BERLIN).problems

    assert (problem.location, problem.code) == ("OBR^1^7", ErrorCode.DATA_TYPE_ERROR)
    assert problem.text.startswith(f"OBR-7: '{local}' {words} in the time zone Europe/Berlin")
    assert "send the time with its offset" in problem.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("202603290330", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("202610250330", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
        ("202610250230+0200", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("202610250230+0100", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ],
)
def test_times_next_to_a_clock_change_or_with_an_offset_are_read(text, expected):
    assert parse_timestamp(text, BERLIN) == expected


# --- accessions ----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_over_long_accession_is_refused_as_such_not_as_a_duplicate(api, oncologist, patient):
    api.force_authenticate(oncologist)
    accession = "A" * (ACCESSION_MAX_LENGTH + 1)
    obr = OBR.replace("|CS-1|", f"|{accession}|")

    r = _post(api, "\r".join([MSH, PID, obr, _obx()]).encode())

    (err,) = [s for s in _segments(r) if s[0] == "ERR"]
    assert (_msa(r)[0][1], err[2], err[3].split("^")[0]) == ("AE", "OBR^1^3", "102")
    assert err[8] == "OBR-3 (the accession) is 65 characters long: CTC Track keeps at most 64."
    assert not CTCDraw.objects.exists()


@pytest.mark.django_db
def test_an_accession_of_the_longest_length_kept_is_stored(api, oncologist, patient):
    api.force_authenticate(oncologist)
    accession = "A" * ACCESSION_MAX_LENGTH
    obr = OBR.replace("|CS-1|", f"|{accession}|")

    r = _post(api, "\r".join([MSH, PID, obr, _obx()]).encode())

    assert _msa(r)[0][1] == "AA"
    assert CTCDraw.objects.get().accession == accession


def test_the_longest_accession_is_the_one_a_draw_keeps():
    assert CTCDraw._meta.get_field("accession").max_length == ACCESSION_MAX_LENGTH


# --- the access log ------------------------------------------------------------------


@pytest.mark.django_db
def test_import_hl7_writes_the_endpoints_access_log_event(patient):
    call_command("import_hl7", str(DATA / "oru_r01_final.hl7"), stdout=StringIO())

    event = AccessEvent.objects.get(action=AccessAction.IMPORT)
    assert (event.username, event.patient, event.target) == (
        "lab-interface",
        patient,
        "HL7 CL260302-0001: AA",
    )


@pytest.mark.django_db
def test_import_hl7_dry_run_stores_nothing_and_so_logs_no_import(patient):
    call_command("import_hl7", str(DATA / "oru_r01_final.hl7"), dry_run=True, stdout=StringIO())

    assert not CTCDraw.objects.exists()
    assert not AccessEvent.objects.filter(action=AccessAction.IMPORT).exists()
