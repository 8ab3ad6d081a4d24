"""HL7 v2 under version 2 of the rules: a count sent as SN `>^1000` is a lower bound;
other SN comparators and ranges are refused with a message that says so; the volume
named by OBX-6 must be from 1.0 to 10.0 mL. Parsing is pure; storing goes through
`POST /api/v1/hl7/oru/`."""

from __future__ import annotations

from datetime import UTC

import pytest

from patients.interop.hl7.ack import AckCode, ErrorCode
from patients.interop.hl7.parse import ParsedMessage, parse_message
from patients.models import VOLUME_OUT_OF_RANGE, CTCDraw

MSH = r"MSH|^~\&|LIS|CITYLAB|CTCTRACK|ONCOLOGY|20260302141502+0100||ORU^R01^ORU_R01|M1|P|2.5.1"
PID = "PID|1||MRN0001^^^GENHOSP^MR||Doe^Jane"
ORC = "ORC|RE|ORD-1|CS-1"
OBR = "OBR|1|ORD-1|CS-1|67568-6^Circulating tumor cells^LN|||20260301083000+0100"
CODES = frozenset({"67568-6", "68123-9"})
URL = "/api/v1/hl7/oru/"


def _obx(value: str, kind: str = "SN", *, units: str = "cells/7.5 mL", status: str = "F") -> str:
    return f"OBX|1|{kind}|67568-6^Circulating tumor cells^LN|1|{value}|{units}|<5|H|||{status}"


def _parse(obx: str) -> ParsedMessage:
    return parse_message("\r".join([MSH, PID, ORC, OBR, obx]), loinc_codes=CODES, tz=UTC)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [">^1000", " > ^1000"])
def test_sn_more_than_is_a_lower_bound(value):
    (result,) = _parse(_obx(value)).results

    assert (result.status, result.count_qualifier, result.ctc_count) == ("resulted", ">", 1000)


@pytest.mark.parametrize(
    ("value", "kind"),
    [("12", "NM"), ("^12", "SN"), ("=^12", "SN")],
)
def test_nm_and_exact_sn_counts_are_exact(value, kind):
    (result,) = _parse(_obx(value, kind)).results

    assert (result.count_qualifier, result.ctc_count) == ("", 12)


@pytest.mark.parametrize("value", ["<^5", "<=^5", ">=^5", "<>^5", "^1^-^5", ">^5^-^9", "^1^:^2"])
def test_other_sn_comparators_and_ranges_are_refused_with_a_specific_message(value):
    parsed = _parse(_obx(value))

    assert parsed.ack_code is AckCode.ERROR
    assert parsed.results == ()
    (problem,) = parsed.problems
    assert (problem.location, problem.code) == ("OBX^1^5", ErrorCode.DATA_TYPE_ERROR)
    assert problem.text == (
        f"OBX-5 '{value}' cannot be stored as a CTC count: send an exact count (NM 12, or SN "
        "^12) or a lower bound (SN >^1000, more than 1000 cells); a comparator such as < or "
        "<= and a range are not accepted."
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (">^", ErrorCode.REQUIRED_FIELD_MISSING),
        (">^many", ErrorCode.DATA_TYPE_ERROR),
        (">^-5", ErrorCode.DATA_TYPE_ERROR),
        (">^2.5", ErrorCode.DATA_TYPE_ERROR),
    ],
)
def test_a_lower_bound_that_is_not_a_whole_number_is_refused(value, code):
    parsed = _parse(_obx(value))

    (problem,) = parsed.problems
    assert (problem.location, problem.code) == ("OBX^1^5", code)
    assert parsed.results == ()


def test_a_sign_in_an_nm_value_says_how_to_send_a_lower_bound():
    (problem,) = _parse(_obx(">1000", "NM")).problems

    assert problem.text == (
        "OBX-5 must be a whole number of cells, 0 or more (got '>1000'); "
        "a lower bound is sent as SN >^<bound>."
    )


def test_obx_11_x_is_still_not_evaluable_whatever_obx_5_holds():
    (result,) = _parse(_obx(">^1000", status="X")).results

    assert (result.status, result.ctc_count, result.count_qualifier) == ("failed", None, "")


# --- storing (the endpoint) -----------------------------------------------------------------


def _post(api, obx: str):
    body = "\r".join([MSH, PID, ORC, OBR, obx]).encode()
    return api.generic("POST", URL, data=body, content_type="text/plain")


def _ack(response) -> tuple[str, list[tuple[str, str, str]]]:
    """MSA-1, and (ERR-2, ERR-3 code, ERR-8) of every ERR."""
    segments = [s.split("|") for s in response.content.decode().split("\r") if s]
    (msa,) = [s for s in segments if s[0] == "MSA"]
    errs = [(s[2], s[3].split("^")[0], s[8]) for s in segments if s[0] == "ERR"]
    return msa[1], errs


@pytest.mark.django_db
def test_a_lower_bound_is_stored_as_one(api, oncologist, patient):
    api.force_authenticate(oncologist)

    code, errs = _ack(_post(api, _obx(">^1000")))

    assert (code, errs) == ("AA", [])
    draw = CTCDraw.objects.get()
    assert (draw.count_qualifier, draw.ctc_count, draw.accession) == (">", 1000, "CS-1")


@pytest.mark.django_db
def test_a_lower_bound_below_the_cut_off_is_refused_at_obx_5(api, oncologist, patient):
    api.force_authenticate(oncologist)

    code, errs = _ack(_post(api, _obx(">^4")))

    assert code == "AE"
    ((location, error, text),) = errs
    assert (location, error) == ("OBX^1^5", "102")
    assert text.startswith("A lower bound below the cut-off cannot be classified")
    assert not CTCDraw.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("units", ["cells/0.5 mL", "cells/0.9 mL", "cells/10.1 mL", "cells/12 mL"])
def test_a_volume_outside_1_to_10_ml_is_refused_at_obx_6(api, oncologist, patient, units):
    api.force_authenticate(oncologist)

    code, errs = _ack(_post(api, _obx("3", "NM", units=units)))

    assert (code, errs) == ("AE", [("OBX^1^6", "102", VOLUME_OUT_OF_RANGE)])
    assert not CTCDraw.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("units", ["cells/1.0 mL", "cells/10 mL"])
def test_a_volume_at_either_end_of_the_range_is_stored(api, oncologist, patient, units):
    api.force_authenticate(oncologist)

    code, _ = _ack(_post(api, _obx("3", "NM", units=units)))

    assert code == "AA"
    assert CTCDraw.objects.count() == 1
