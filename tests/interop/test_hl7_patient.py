"""HL7 v2 in: a result is filed on the right patient, always.

Messages of their own structure (several patients in one message, several
identifiers, patient-level notes), sent through `POST /api/v1/hl7/oru/`.
"""

from __future__ import annotations

from datetime import UTC, date

import pytest

from patients.interop.hl7.parse import parse_message
from patients.models import CTCDraw
from tests import builders
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

URL = "/api/v1/hl7/oru/"
DATA = SAMPLES / "hl7"
MSH = r"MSH|^~\&|LIS|CITYLAB|CTCTRACK|ONCOLOGY|20260302141502+0100||ORU^R01^ORU_R01|M-1|P|2.5.1"


def _pid(mrn: str, name: str = "Doe^Jane", birth: str = "19600517", sex: str = "F") -> str:
    return f"PID|1||{mrn}^^^GENHOSP^MR||{name}||{birth}|{sex}"


def _order(accession: str, count: int = 7) -> list[str]:
    return [
        f"OBR|1||{accession}|67568-6^CTC^LN|||20260301083000+0100",
        f"OBX|1|NM|67568-6^CTC^LN|1|{count}|cells/7.5 mL|<5||||F",
    ]


def _post(api, *segments: str):
    body = "\r".join([MSH, *segments]).encode()
    return api.generic("POST", URL, data=body, content_type="text/plain")


def _answer(response) -> tuple[str, str, list[tuple[str, str, str]]]:
    """MSA-1, MSA-3, and (ERR-2, ERR-3 code, ERR-8) of every ERR."""
    segments = [s.split("|") for s in response.content.decode().split("\r") if s]
    (msa,) = [s for s in segments if s[0] == "MSA"]
    errs = [(s[2], s[3].split("^")[0], s[8]) for s in segments if s[0] == "ERR"]
    return msa[1], msa[3], errs


@pytest.fixture
def john(oncologist):
    return builders.patient(
        oncologist,
        mrn="MRN0002",
        given_name="John",
        family_name="Roe",
        birth_date=date(1955, 2, 1),
        sex="male",
        cancer_type="prostate",
    )


# --- notes ---------------------------------------------------------------------------


def test_a_note_after_the_second_pid_stays_with_the_second_patient(api, oncologist, patient, john):
    api.force_authenticate(oncologist)

    r = _post(
        api,
        _pid("MRN0001"),
        *_order("CS-A"),
        _pid("MRN0002", "Roe^John", "19550201", "M"),
        "NTE|1|L|Patient on anticoagulants.",
        *_order("CS-B", 3),
    )

    assert _answer(r)[0] == "AA"
    draws = {d.accession: d for d in CTCDraw.objects.all()}
    assert (draws["CS-A"].patient, draws["CS-A"].comment) == (patient, "")
    assert (draws["CS-B"].patient, draws["CS-B"].comment) == (john, "Patient on anticoagulants.")


def test_patient_notes_come_before_the_notes_of_the_order_and_the_result(api, oncologist, patient):
    api.force_authenticate(oncologist)
    obr, obx = _order("CS-A")

    r = _post(
        api,
        _pid("MRN0001"),
        "NTE|1|L|Patient note.",
        "PV1|1|O",
        obr,
        "NTE|1|L|Order note.",
        obx,
        "NTE|1|L|Result note.",
    )

    assert _answer(r)[0] == "AA"
    assert CTCDraw.objects.get().comment.splitlines() == [
        "Patient note.",
        "Order note.",
        "Result note.",
    ]


def test_a_file_of_two_patients_with_notes_files_each_note_with_its_patient(
    api, oncologist, patient, john
):
    api.force_authenticate(oncologist)
    body = (DATA / "oru_r01_two_patients_notes.hl7").read_bytes()

    r = api.generic("POST", URL, data=body, content_type="text/plain")

    assert _answer(r)[:2] == (
        "AA",
        "Recorded: accession CS-26-0201; Recorded: accession CS-26-0202",
    )
    jane, johns = CTCDraw.objects.order_by("accession")
    assert (jane.patient, jane.ctc_count, jane.comment) == (patient, 4, "")
    assert (johns.patient, johns.ctc_count) == (john, 12)
    assert johns.comment.splitlines() == [
        "Patient on apixaban; venepuncture difficult.",
        "Drawn from the port.",
        "Clusters seen.",
    ]


@pytest.mark.parametrize(
    ("after", "segment"),
    [("PID", "OBX|1|NM|67568-6^CTC^LN|1|3|cells/7.5 mL|<5||||F"), ("ORC", "NTE|1|L|Whose?")],
)
def test_a_segment_cut_off_from_its_order_by_a_pid_or_orc_is_refused(
    api, oncologist, patient, john, after, segment
):
    api.force_authenticate(oncologist)
    cut = [_pid("MRN0002", "Roe^John", "19550201", "M")] if after == "PID" else ["ORC|RE||CS-B"]

    r = _post(api, _pid("MRN0001"), *_order("CS-A"), *cut, segment, *_order("CS-B", 3)[:1])

    code, text, errs = _answer(r)
    assert (code, errs[0][1]) == ("AR", "100")
    assert f"after {'a PID' if after == 'PID' else 'an ORC'} segment" in text
    assert not CTCDraw.objects.exists()


# --- PID-3: which identifier ------------------------------------------------------------

# Another hospital's number first, equal to one of ours; then ours (namespace and OID).
TWO_MRNS = (
    "PID|1||MRN0002^^^OTHERHOSP&2.999.77&ISO^MR~MRN0001^^^GENHOSP&2.999.1&ISO^MR"
    "||Doe^Jane||19600517|F"
)


@pytest.mark.parametrize("authority", ["GENHOSP", "2.999.1"])
def test_the_mr_identifier_of_our_assigning_authority_is_used(
    api, oncologist, patient, john, settings, authority
):
    settings.CTCTRACK_HL7_ASSIGNING_AUTHORITY = authority
    api.force_authenticate(oncologist)

    r = _post(api, TWO_MRNS, *_order("CS-A"))

    assert _answer(r)[0] == "AA"
    assert CTCDraw.objects.get().patient == patient


def test_without_the_setting_the_first_mr_identifier_is_used(api, oncologist, patient, john):
    api.force_authenticate(oncologist)
    pid = TWO_MRNS.replace("Doe^Jane||19600517|F", "Roe^John||19550201|M")

    r = _post(api, pid, *_order("CS-A"))

    assert _answer(r)[0] == "AA"
    assert CTCDraw.objects.get().patient == john


def test_no_mr_identifier_of_our_authority_is_refused_and_nothing_stored(
    api, oncologist, patient, settings
):
    settings.CTCTRACK_HL7_ASSIGNING_AUTHORITY = "GENHOSP"
    api.force_authenticate(oncologist)

    r = _post(api, "PID|1||MRN0001^^^OTHERHOSP^MR||Doe^Jane||19600517|F", *_order("CS-A"))

    code, text, errs = _answer(r)
    assert (code, errs[0][:2]) == ("AE", ("PID^1^3", "204"))
    assert "no medical record number (MR) assigned by GENHOSP" in text
    assert not CTCDraw.objects.exists()


def test_two_different_mrns_of_our_authority_are_refused(api, oncologist, patient, settings):
    settings.CTCTRACK_HL7_ASSIGNING_AUTHORITY = "GENHOSP"
    api.force_authenticate(oncologist)
    pid = "PID|1||MRN0001^^^GENHOSP^MR~MRN0002^^^GENHOSP^MR||Doe^Jane||19600517|F"

    r = _post(api, pid, *_order("CS-A"))

    assert _answer(r)[2][0][:2] == ("PID^1^3", "204")
    assert not CTCDraw.objects.exists()


# --- PID-5, PID-7, PID-8: is it the same person? ----------------------------------------


def test_another_birth_date_is_refused_naming_pid_7(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _pid("MRN0001", birth="19600518"), *_order("CS-A"))

    code, text, errs = _answer(r)
    assert (code, errs[0][:2]) == ("AE", ("PID^1^7", "204"))
    assert text.startswith("PID-7 (date of birth) does not match the patient with MRN MRN0001")
    assert "1960" not in text  # the record's own birth date is not told to the sender
    assert not CTCDraw.objects.exists()


def test_a_patients_problem_is_reported_once_however_many_orders_it_has():
    message = "\r".join([MSH, "PID|1||MRN0001^^^GENHOSP^MR||Doe^Jane||1960-05-17|F"])
    message += "\r" + "\r".join([*_order("CS-A"), *_order("CS-B")])

    parsed = parse_message(message, loinc_codes={"67568-6"}, tz=UTC)

    assert [p.location for p in parsed.problems] == ["PID^1^7"]


def test_another_family_name_and_sex_together_are_refused(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _pid("MRN0001", name="Roe^John", sex="M"), *_order("CS-A"))

    code, text, errs = _answer(r)
    assert (code, errs[0][:2]) == ("AE", ("PID^1^5", "204"))
    assert "PID-5 (family name) and PID-8 (sex) both differ" in text
    assert not CTCDraw.objects.exists()


@pytest.mark.parametrize(
    ("name", "sex"),
    [
        ("Smith^Jane", "F"),  # a new family name alone (marriage)
        ("Doe^Jane", "M"),  # a sex recorded otherwise alone
        ("DÖE^JANE", "M"),  # case and accents are not a difference
        ("Smith^Jane~Doe^Jane^^^^^M", "M"),  # a maiden name among the names sent
        ("Smith^Jane", "U"),  # unknown sex says nothing
        ("Smith^Jane", ""),  # empty fields are not disagreements
        ("", "M"),
    ],
)
def test_one_difference_alone_or_an_empty_field_is_accepted(api, oncologist, patient, name, sex):
    api.force_authenticate(oncologist)

    r = _post(api, _pid("MRN0001", name=name, sex=sex), *_order("CS-A"))

    assert _answer(r)[0] == "AA"
    assert CTCDraw.objects.get().patient == patient


@pytest.mark.parametrize("birth", ["", "1960", "196005", "19600517120000"])
def test_an_empty_or_less_precise_birth_date_that_agrees_is_accepted(
    api, oncologist, patient, birth
):
    api.force_authenticate(oncologist)

    r = _post(api, _pid("MRN0001", birth=birth), *_order("CS-A"))

    assert _answer(r)[0] == "AA"


def test_a_birth_date_that_is_not_a_date_is_refused(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _pid("MRN0001", birth="19601317"), *_order("CS-A"))

    assert _answer(r)[2] == [
        ("PID^1^7", "102", "PID-7 (date of birth) '19601317' is not a date: use YYYYMMDD.")
    ]
    assert not CTCDraw.objects.exists()


def test_a_mismatch_on_the_second_patient_keeps_the_first_from_being_stored(
    api, oncologist, patient, john
):
    api.force_authenticate(oncologist)

    r = _post(
        api,
        _pid("MRN0001"),
        *_order("CS-A"),
        _pid("MRN0002", "Roe^John", "19550202", "M"),
        *_order("CS-B", 3),
    )

    assert _answer(r)[2][0][:2] == ("PID^2^7", "204")
    assert not CTCDraw.objects.exists()
