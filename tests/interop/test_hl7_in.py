"""patients.interop.hl7.parse: ORU^R01 messages to CTC results, and the ACKs. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from patients.interop.hl7.ack import (
    AckCode,
    ErrorCode,
    Header,
    Problem,
    build_ack,
    escape,
    frame,
    problem_for,
)
from patients.interop.hl7.parse import ParsedMessage, parse_message, split_body
from patients.interop.hl7.values import parse_timestamp, volume_from_units
from tests.paths import DATA as SAMPLES

DATA = SAMPLES / "hl7"
CODES = frozenset({"67568-6", "68123-9"})
BERLIN = ZoneInfo("Europe/Berlin")

MSH = r"MSH|^~\&|LIS|CITYLAB|CTCTRACK|ONCOLOGY|20260302141502+0100||ORU^R01^ORU_R01|M1|P|2.5.1"
PID = "PID|1||MRN0001^^^GENHOSP^MR||Doe^Jane"
ORC = "ORC|RE|ORD-1|CS-1"
OBR = "OBR|1|ORD-1|CS-1|67568-6^Circulating tumor cells^LN|||20260301083000+0100"


def _obx(value: str = "7", status: str = "F", *, units: str = "cells/7.5 mL", n: int = 1) -> str:
    return f"OBX|{n}|NM|67568-6^Circulating tumor cells^LN|1|{value}|{units}|<5||||{status}"


def _parse(*segments: str, codes: frozenset[str] = CODES, tz=UTC) -> ParsedMessage:
    return parse_message("\r".join(segments), loinc_codes=codes, tz=tz)


def _file(name: str) -> list[ParsedMessage]:
    body = split_body((DATA / name).read_bytes())
    return [parse_message(text, loinc_codes=CODES, tz=UTC) for text in body.messages]


def _only_problem(parsed: ParsedMessage) -> Problem:
    (problem,) = parsed.problems
    return problem


# --- realistic messages from tests/data/hl7 ---------------------------------------------


def test_a_final_result_among_other_results_becomes_one_draw_with_its_notes():
    (parsed,) = _file("oru_r01_final.hl7")

    (result,) = parsed.results
    assert parsed.ack_code is AckCode.ACCEPT
    assert parsed.header.control_id == "CL260302-0001"
    assert parsed.ignored_results == 2  # the leucocyte count and the annotation
    assert (result.mrn, result.accession, result.loinc_code) == ("MRN0001", "CS-26-0101", "67568-6")
    assert (result.status, result.ctc_count, result.corrected) == ("resulted", 7, False)
    assert result.blood_volume_ml == Decimal("7.5")
    assert result.drawn_at == datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    assert result.comment.splitlines() == [
        "CellSearch Circulating Tumor Cell Kit (Menarini Silicon Biosystems).",
        "Received in CellSave tube & processed within 72 h.",
        "Reviewed by J. Smith | CTC morphology confirmed.",
        "Second line of the same note.",
    ]


def test_the_mrn_is_the_pid_3_repetition_of_type_mr_not_the_first():
    (parsed,) = _file("oru_r01_final.hl7")  # PID-3: an SSA number first, then the MRN

    assert parsed.results[0].mrn == "MRN0001"


def test_a_result_that_could_not_be_obtained_is_a_failed_draw_never_a_zero():
    (parsed,) = _file("oru_r01_failed.hl7")

    (result,) = parsed.results
    assert (result.status, result.ctc_count) == ("failed", None)
    assert result.comment == "Not evaluable: CellTracks Analyzer II image acquisition failed."


def test_a_specimen_reject_reason_makes_a_rejected_draw_with_the_reason_as_comment():
    (parsed,) = _file("oru_r01_rejected_specimen.hl7")

    (result,) = parsed.results
    assert (result.status, result.ctc_count) == ("rejected", None)
    assert result.comment.splitlines() == [
        "Specimen rejected: Expired (EX)",
        "Received 101 h after collection; CellSave tubes must be processed within 96 h.",
    ]


def test_a_corrected_result_is_marked_as_a_correction():
    (parsed,) = _file("oru_r01_corrected.hl7")  # CRLF line ends

    (result,) = parsed.results
    assert (result.accession, result.ctc_count, result.corrected) == ("CS-26-0101", 9, True)


def test_a_final_result_without_a_count_is_an_error_naming_obx_5():
    (parsed,) = _file("oru_r01_final_without_count.hl7")

    assert parsed.ack_code is AckCode.ERROR
    assert parsed.results == ()
    problem = _only_problem(parsed)
    assert (problem.location, problem.code) == ("OBX^2^5", ErrorCode.REQUIRED_FIELD_MISSING)
    assert "OBX-5" in problem.text


def test_an_obx_outside_any_order_makes_the_message_malformed():
    (parsed,) = _file("malformed.hl7")

    assert parsed.ack_code is AckCode.REJECT
    assert _only_problem(parsed) == Problem(
        "OBX^1", ErrorCode.SEGMENT_SEQUENCE_ERROR, "OBX arrived before any OBR."
    )


def test_a_message_that_is_not_an_oru_r01_is_rejected():
    (parsed,) = _file("adt_a01.hl7")

    assert parsed.ack_code is AckCode.REJECT
    assert parsed.header.control_id == "PAS-778812"
    assert _only_problem(parsed).code is ErrorCode.UNSUPPORTED_MESSAGE_TYPE


def test_two_messages_in_one_file_are_parsed_on_their_own():
    good, bad = _file("two_messages_one_bad.hl7")

    assert (good.ack_code, good.results[0].accession) == (AckCode.ACCEPT, "CS-26-0110")
    assert bad.ack_code is AckCode.ERROR
    assert _only_problem(bad).text == (
        "OBX-5 must be a whole number of cells, 0 or more (got '3.5')."
    )


# --- splitting a body -----------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
@pytest.mark.parametrize("framed", [False, True])
def test_cr_lf_and_crlf_line_ends_and_mllp_framing_give_the_same_message(ending, framed):
    text = ending.join([MSH, PID, ORC, OBR, _obx()]) + ending
    body = f"\x0b{text}\x1c\r" if framed else text

    split = split_body(body.encode())

    assert split.messages == ("\r".join([MSH, PID, ORC, OBR, _obx()]),)
    assert split.framed is framed


def test_a_body_is_split_into_messages_at_each_msh_and_batch_envelopes_are_dropped():
    second = MSH.replace("|M1|", "|M2|")
    body = "\r".join(["FHS|^~\\&", "BHS|^~\\&", MSH, PID, second, PID, "BTS|2", "FTS|1"])

    split = split_body(body)

    assert split.messages == (f"{MSH}\r{PID}", f"{second}\r{PID}")


def test_segments_before_the_first_msh_are_rejected_not_skipped():
    split = split_body(f"PID|1||MRN0001\r{MSH}\r{PID}")

    stray = parse_message(split.messages[0], loinc_codes=CODES, tz=UTC)

    assert len(split.messages) == 2
    assert stray.ack_code is AckCode.REJECT
    assert "before any MSH" in _only_problem(stray).text


def test_a_body_in_latin_1_is_read_rather_than_refused():
    body = "\r".join([MSH, PID, ORC, OBR, _obx(), "NTE|1|L|Prélèvement reçu"]).encode("latin-1")

    (text,) = split_body(body).messages

    assert "Prélèvement reçu" in text


# --- header and structure -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "code", "location"),
    [
        (MSH.replace("ORU^R01^ORU_R01", "ORM^O01"), ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH^1^9"),
        (MSH.replace("ORU^R01^ORU_R01", "ORU^R30"), ErrorCode.UNSUPPORTED_EVENT_CODE, "MSH^1^9"),
        (MSH.replace("|M1|P|", "|M1|T|"), ErrorCode.UNSUPPORTED_PROCESSING_ID, "MSH^1^11"),
        (MSH.replace("|M1|", "||"), ErrorCode.REQUIRED_FIELD_MISSING, "MSH^1^10"),
        (MSH.replace("^~\\&", "^~"), ErrorCode.DATA_TYPE_ERROR, "MSH^1^2"),
        ("MSH|", ErrorCode.DATA_TYPE_ERROR, "MSH^1^2"),
    ],
)
def test_an_unreadable_or_unsupported_header_rejects_the_message(header, code, location):
    parsed = _parse(header, PID, ORC, OBR, _obx())

    assert parsed.ack_code is AckCode.REJECT
    assert parsed.results == ()
    assert (_only_problem(parsed).code, _only_problem(parsed).location) == (code, location)


@pytest.mark.parametrize("segment", ["PID|1||MRN\x000001^^^GENHOSP^MR||Doe^Jane", "NTE|1||a\x00b"])
def test_a_nul_character_anywhere_rejects_the_message_before_any_lookup(segment):
    """PostgreSQL refuses NUL in a query: such a message once reached the MRN lookup (a 500)."""
    body = (
        [MSH, segment, ORC, OBR, _obx()]
        if segment.startswith("PID")
        else [MSH, PID, ORC, OBR, _obx(), segment]
    )
    parsed = _parse(*body)

    assert parsed.ack_code is AckCode.REJECT
    assert not parsed.results
    assert "NUL character" in _only_problem(parsed).text


def test_a_training_message_never_reaches_the_record():
    parsed = _parse(MSH.replace("|M1|P|", "|M1|T|"), PID, ORC, OBR, _obx())

    assert "production (P) messages only" in _only_problem(parsed).text


def test_a_message_without_a_pid_is_malformed():
    parsed = _parse(MSH, ORC, OBR, _obx())

    assert parsed.ack_code is AckCode.REJECT
    assert _only_problem(parsed).location == "OBR^1"


def test_each_order_belongs_to_the_patient_before_it():
    other_patient = "PID|2||MRN0002^^^GENHOSP^MR||Roe^Rita"
    second_order = OBR.replace("|CS-1|", "|CS-2|")

    parsed = _parse(MSH, PID, ORC, OBR, _obx(), other_patient, second_order, _obx("3", n=2))

    assert [(r.mrn, r.accession, r.ctc_count) for r in parsed.results] == [
        ("MRN0001", "CS-1", 7),
        ("MRN0002", "CS-2", 3),
    ]
    assert parsed.results[1].location_of("mrn") == "PID^2^3"


def test_the_mrn_falls_back_to_the_first_identifier_when_none_is_of_type_mr():
    parsed = _parse(MSH, "PID|1||H-4471^^^GENHOSP~X9^^^OTHER||Doe^Jane", ORC, OBR, _obx())

    assert parsed.results[0].mrn == "H-4471"


def test_an_empty_pid_3_is_an_error_naming_it():
    parsed = _parse(MSH, "PID|1||||Doe^Jane", ORC, OBR, _obx())

    assert _only_problem(parsed).location == "PID^1^3"
    assert _only_problem(parsed).code is ErrorCode.REQUIRED_FIELD_MISSING


# --- which OBX become draws ----------------------------------------------------------


def test_a_message_without_a_ctc_result_is_an_error_that_says_so():
    parsed = _parse(MSH, PID, ORC, OBR, "OBX|1|NM|26464-8^Leukocytes^LN||6.1|10*9/L||||F")

    assert parsed.ack_code is AckCode.ERROR
    assert _only_problem(parsed).text == (
        "No CTC result: no OBX has LOINC 67568-6 or 68123-9 in OBX-3 (1 other result not kept)."
    )


def test_the_ctc_codes_come_from_the_caller():
    local = "OBX|1|NM|99999-9^Local CTC^LN||4|cells/7.5 mL|||||F"

    parsed = _parse(MSH, PID, ORC, OBR, local, codes=frozenset({"99999-9"}))

    assert parsed.results[0].loinc_code == "99999-9"


def test_a_loinc_code_in_the_alternate_identifier_is_recognised():
    local = "OBX|1|NM|CTC^CellSearch count^L^68123-9^CTC prostate^LN||4|cells/7.5 mL|||||F"

    parsed = _parse(MSH, PID, ORC, OBR, local)

    assert parsed.results[0].loinc_code == "68123-9"


def test_preliminary_results_are_not_stored_and_alone_are_an_error():
    parsed = _parse(MSH, PID, ORC, OBR, _obx(status="P"))

    assert parsed.ack_code is AckCode.ERROR
    problem = _only_problem(parsed)
    assert (problem.location, problem.code) == ("OBX^1^11", ErrorCode.TABLE_VALUE_NOT_FOUND)
    assert "OBX-11 P results are not stored" in problem.text


def test_a_preliminary_result_beside_a_final_one_is_counted_but_not_stored():
    preliminary = OBR.replace("|CS-1|", "|CS-2|")

    parsed = _parse(MSH, PID, ORC, OBR, _obx(), preliminary, _obx("2", "P", n=2))

    assert parsed.ack_code is AckCode.ACCEPT
    assert [r.accession for r in parsed.results] == ["CS-1"]
    assert parsed.not_final == 1


@pytest.mark.parametrize("status", ["W", "D"])
def test_a_retracted_result_is_never_applied_silently(status):
    parsed = _parse(MSH, PID, ORC, OBR, _obx(status=status))

    assert parsed.ack_code is AckCode.ERROR
    assert "mark the draw as entered in error" in _only_problem(parsed).text


def test_two_ctc_results_in_one_order_are_refused():
    parsed = _parse(MSH, PID, ORC, OBR, _obx(), _obx("8", n=2))

    assert parsed.results == ()  # one accession cannot hold two draws
    problem = _only_problem(parsed)
    assert (problem.location, problem.code) == ("OBX^2^3", ErrorCode.DUPLICATE_KEY_IDENTIFIER)


def test_one_accession_twice_in_a_message_is_refused():
    parsed = _parse(MSH, PID, ORC, OBR, _obx(), OBR, _obx("8", n=2))

    assert _only_problem(parsed).text == "Accession CS-1 appears twice in this message."


# --- the values of a result ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", ErrorCode.REQUIRED_FIELD_MISSING),
        ("-1", ErrorCode.DATA_TYPE_ERROR),
        ("2.5", ErrorCode.DATA_TYPE_ERROR),
        ("five", ErrorCode.DATA_TYPE_ERROR),
        (">100", ErrorCode.DATA_TYPE_ERROR),
    ],
)
def test_a_final_count_must_be_a_whole_number_0_or_more(value, code):
    parsed = _parse(MSH, PID, ORC, OBR, _obx(value))

    assert parsed.results == ()
    assert (_only_problem(parsed).location, _only_problem(parsed).code) == ("OBX^1^5", code)


def test_a_count_of_zero_is_a_count():
    assert _parse(MSH, PID, ORC, OBR, _obx("0")).results[0].ctc_count == 0


def test_a_structured_numeric_count_is_read_when_it_is_exact():
    exact = "OBX|1|SN|67568-6^CTC^LN||=^12|cells/7.5 mL|||||F"
    censored = "OBX|1|SN|67568-6^CTC^LN||<^1|cells/7.5 mL|||||F"

    assert _parse(MSH, PID, ORC, OBR, exact).results[0].ctc_count == 12
    assert _parse(MSH, PID, ORC, OBR, censored).ack_code is AckCode.ERROR


def test_a_rejected_specimen_with_a_count_is_a_contradiction():
    spm = "SPM|1|||119297000^Blood^SCT|||||||||||||||||RH^Hemolysis^HL70490"

    parsed = _parse(MSH, PID, ORC, OBR, _obx("3", "X"), spm)

    assert "SPM-21 says the specimen was rejected" in _only_problem(parsed).text


@pytest.mark.parametrize(
    ("units", "volume"),
    [
        ("cells/7.5 mL", Decimal("7.5")),
        ("Cells/10mL", Decimal("10")),
        ("CTC / 15 ml", Decimal("15")),
        ("/7,5 mL", Decimal("7.5")),
        ("{cells}/4.5.mL", Decimal("4.5")),
    ],
)
def test_the_volume_comes_from_units_naming_one(units, volume):
    assert volume_from_units(units) == volume
    assert _parse(MSH, PID, ORC, OBR, _obx(units=units)).results[0].blood_volume_ml == volume


def test_without_units_the_volume_is_the_standard_7_5_ml():
    assert _parse(MSH, PID, ORC, OBR, _obx(units="")).results[0].blood_volume_ml == Decimal("7.5")


@pytest.mark.parametrize("units", ["cells/mL", "10*9/L", "cells/7.5 L"])
def test_units_that_name_no_volume_are_an_error_naming_obx_6(units):
    parsed = _parse(MSH, PID, ORC, OBR, _obx(units=units))

    assert volume_from_units(units) is None
    assert _only_problem(parsed).location == "OBX^1^6"


def test_the_draw_time_is_obx_14_before_obr_7():
    obx = _obx() + "|||20260301091500+0100"

    result = _parse(MSH, PID, ORC, OBR, obx).results[0]

    assert result.drawn_at == datetime(2026, 3, 1, 8, 15, tzinfo=UTC)
    assert result.location_of("drawn_at") == "OBX^1^14"


def test_the_draw_time_falls_back_to_obr_7():
    result = _parse(MSH, PID, ORC, OBR, _obx()).results[0]

    assert result.drawn_at == datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    assert result.location_of("drawn_at") == "OBR^1^7"


def test_a_result_without_a_draw_time_is_an_error_naming_obr_7():
    parsed = _parse(MSH, PID, ORC, "OBR|1|ORD-1|CS-1|67568-6^CTC^LN", _obx())

    assert _only_problem(parsed).location == "OBR^1^7"
    assert _only_problem(parsed).code is ErrorCode.REQUIRED_FIELD_MISSING


def test_a_time_without_an_offset_is_read_in_the_clinics_time_zone():
    obr = OBR.replace("20260301083000+0100", "20260701083000")

    result = _parse(MSH, PID, ORC, obr, _obx(), tz=BERLIN).results[0]

    assert result.drawn_at == datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # CEST is UTC+2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("202603010830", datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ("20260301083015", datetime(2026, 3, 1, 8, 30, 15, tzinfo=UTC)),
        ("20260301083015.1234-0500", datetime(2026, 3, 1, 13, 30, 15, tzinfo=UTC)),
        ("20260301083000+0530^S", datetime(2026, 3, 1, 3, 0, tzinfo=UTC)),
    ],
)
def test_hl7_timestamps_are_read_with_their_offset(text, expected):
    assert parse_timestamp(text, UTC) == expected


@pytest.mark.parametrize(
    "text", ["20260301", "2026-03-01T08:30", "20261301083000", "20260301083000+2500", "soon"]
)
def test_a_draw_time_must_be_a_real_date_and_time(text):
    with pytest.raises(ValueError, match="date and time"):
        parse_timestamp(text, UTC)


def test_a_bad_draw_time_is_an_error_naming_where_it_came_from():
    obx = _obx() + "|||20260231083000"

    problem = _only_problem(_parse(MSH, PID, ORC, OBR, obx))

    assert (problem.location, problem.code) == ("OBX^1^14", ErrorCode.DATA_TYPE_ERROR)
    assert problem.text == "OBX-14: '20260231083000' is not a valid date and time."


def test_the_accession_falls_back_to_orc_3():
    result = _parse(MSH, PID, ORC, "OBR|1|ORD-1||67568-6^CTC^LN|||202603010830", _obx()).results[0]

    assert (result.accession, result.location_of("accession")) == ("CS-1", "ORC^1^3")


def test_a_result_without_an_accession_is_an_error():
    parsed = _parse(MSH, PID, "OBR|1|ORD-1||67568-6^CTC^LN|||202603010830", _obx())

    assert _only_problem(parsed).location == "OBR^1^3"
    assert "accession" in _only_problem(parsed).text


def test_escape_sequences_in_notes_are_resolved():
    note = r"NTE|1|L|a \E\ b \S\ c \R\ d \H\bold\N\ e\.br\next line"

    result = _parse(MSH, PID, ORC, OBR, _obx(), note).results[0]

    assert result.comment == "a \\ b ^ c ~ d bold e\nnext line"


def test_notes_on_the_order_and_on_the_result_are_kept_in_order():
    parsed = _parse(MSH, PID, ORC, OBR, "NTE|1||on the order", _obx(), "NTE|1||on the result")

    assert parsed.results[0].comment == "on the order\non the result"


# --- acknowledgements --------------------------------------------------------------------

HEADER = Header(
    control_id="CL260302-0001",
    version="2.5.1",
    sending_application="CELLSEARCH_LIS",
    sending_facility="CITYLAB^2.16.840.1.113883.19.4.6^ISO",
    receiving_facility="ONCOLOGY",
)
NOW = datetime(2026, 3, 2, 13, 16, 2, tzinfo=UTC)


def test_an_accepting_ack_echoes_the_sender_and_the_control_id():
    ack = build_ack(HEADER, AckCode.ACCEPT, "Recorded", control_id="A1", now=NOW, tz=BERLIN)

    assert ack.split("\r") == [
        r"MSH|^~\&|CTCTRACK|ONCOLOGY|CELLSEARCH_LIS|CITYLAB^2.16.840.1.113883.19.4.6^ISO|"
        r"20260302141602+0100||ACK^R01^ACK|A1|P|2.5.1",
        "MSA|AA|CL260302-0001|Recorded",
        "",
    ]


def test_an_error_ack_has_one_err_segment_per_problem_in_hl7_2_5_style():
    problems = [
        Problem("PID^1^3", ErrorCode.UNKNOWN_KEY_IDENTIFIER, "No patient with MRN X9."),
        Problem("OBX^2^5", ErrorCode.DATA_TYPE_ERROR, "Bad | count ^ here"),
    ]

    ack = build_ack(HEADER, AckCode.ERROR, "No patient", problems, control_id="A2", now=NOW, tz=UTC)

    assert ack.split("\r")[1:] == [
        "MSA|AE|CL260302-0001|No patient",
        "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||No patient with MRN X9.",
        r"ERR||OBX^2^5|102^Data type error^HL70357|E||||Bad \F\ count \S\ here",
        "",
    ]


def test_an_ack_for_an_unreadable_message_falls_back_to_the_default_version():
    ack = build_ack(Header(), AckCode.REJECT, "x", control_id="A3", now=NOW, tz=UTC)

    assert ack.split("\r")[0].endswith("|ACK^R01^ACK|A3|P|2.5.1")
    assert ack.split("\r")[1] == "MSA|AR||x"


def test_text_in_an_ack_is_escaped():
    assert escape("a|b^c~d&e\\f\ng") == r"a\F\b\S\c\R\d\T\e\E\f\.br\g"


def test_acks_are_framed_only_when_the_request_was():
    assert frame(["A\r", "B\r"], framed=False) == "A\rB\r"
    assert frame(["A\r", "B\r"], framed=True) == "\x0bA\r\x1c\r\x0bB\r\x1c\r"


def test_error_codes_read_as_hl7_table_0357_names_them():
    assert ErrorCode.UNSUPPORTED_PROCESSING_ID.text == "Unsupported processing ID"
    assert ErrorCode.REQUIRED_FIELD_MISSING.text == "Required field missing"


def test_a_problem_found_when_storing_points_where_the_lab_sent_the_value():
    result = _parse(MSH, PID, ORC, OBR, _obx()).results[0]

    assert problem_for(result, "mrn", "unknown") == Problem(
        "PID^1^3", ErrorCode.UNKNOWN_KEY_IDENTIFIER, "unknown"
    )
    assert problem_for(result, "drawn_at", "future").location == "OBR^1^7"
    assert problem_for(result, "__all__", "odd").location == "OBX^1"


def test_offsets_are_kept_when_formatting_the_ack_time():
    ack = build_ack(
        HEADER,
        AckCode.ACCEPT,
        "",
        control_id="A4",
        now=NOW,
        tz=timezone(timedelta(hours=-5)),
    )

    assert "|20260302081602-0500|" in ack
