"""HL7 v2 lab results in: `POST /api/v1/hl7/oru/` and `manage.py import_hl7`.

Both take the same path (`patients.interop.hl7.receive.receive_hl7`); the endpoint's
tests cover what happens to the record, the command's what it reports.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from patients import services
from patients.models import CTCDraw, DrawStatus
from tests import builders
from tests.builders import api_token
from tests.outage import unreachable_database
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

URL = "/api/v1/hl7/oru/"
DATA = SAMPLES / "hl7"


def _body(*names: str) -> bytes:
    return b"".join((DATA / name).read_bytes() for name in names)


def _post(api, body: bytes, content_type: str = "text/plain"):
    return api.generic("POST", URL, data=body, content_type=content_type)


def _segments(response) -> list[list[str]]:
    """The answer's segments, each split into fields (MLLP framing removed)."""
    text = response.content.decode().replace("\x0b", "").replace("\x1c", "")
    return [segment.split("|") for segment in text.split("\r") if segment]


def _acks(response) -> list[tuple[str, str, str]]:
    """(MSA-1, MSA-2, MSA-3) of every ACK in the answer."""
    return [tuple(s[1:4]) for s in _segments(response) if s[0] == "MSA"]


def _errs(response) -> list[tuple[str, str, str]]:
    """(ERR-2 location, ERR-3 code, ERR-8 text) of every ERR segment."""
    return [(s[2], s[3].split("^")[0], s[8]) for s in _segments(response) if s[0] == "ERR"]


# --- the endpoint ------------------------------------------------------------------------


def test_it_records_a_final_result_and_answers_aa(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_final.hl7"))

    assert r.status_code == 200
    assert r["Content-Type"] == "application/hl7-v2; charset=utf-8"
    assert _acks(r) == [
        (
            "AA",
            "CL260302-0001",
            "Recorded: accession CS-26-0101; 2 other results not kept (not CTC counts)",
        )
    ]
    draw = CTCDraw.objects.get()
    assert (draw.patient, draw.status, draw.ctc_count) == (patient, "resulted", 7)
    assert (draw.accession, draw.blood_volume_ml) == ("CS-26-0101", Decimal("7.5"))
    assert draw.drawn_at == datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    assert draw.entered_by == oncologist
    assert "Received in CellSave tube & processed within 72 h." in draw.comment
    assert "Reviewed by J. Smith | CTC morphology confirmed." in draw.comment


def test_its_ack_counts_the_results_not_kept_in_words_that_agree(api, oncologist, patient):
    api.force_authenticate(oncologist)
    one_other = b"\r".join(
        s for s in _body("oru_r01_final.hl7").split(b"\r") if not s.startswith(b"OBX|3|")
    )

    r = _post(api, one_other)

    assert _acks(r)[0][2] == (
        "Recorded: accession CS-26-0101; 1 other result not kept (not CTC counts)"
    )


def test_its_ack_header_answers_the_sender(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_final.hl7"))

    msh = _segments(r)[0]
    assert msh[:6] == [
        "MSH",
        "^~\\&",
        "CTCTRACK",
        "ONCOLOGY^2.16.840.1.113883.19.4.7^ISO",
        "CELLSEARCH_LIS",
        "CITYLAB^2.16.840.1.113883.19.4.6^ISO",
    ]
    assert msh[8:12] == ["ACK^R01^ACK", msh[9], "P", "2.5.1"]
    assert msh[9] and msh[9] != "CL260302-0001"  # a control ID of its own


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/hl7-v2", "x-application/hl7-v2+er7", "application/json", ""],
)
def test_it_accepts_messages_whatever_the_content_type_says(api, oncologist, patient, content_type):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_final.hl7"), content_type)

    assert r.status_code == 200
    assert _acks(r)[0][0] == "AA"
    assert CTCDraw.objects.count() == 1


def test_it_answers_a_framed_request_with_framed_acks(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_lf_mllp.hl7"))  # MLLP framing, LF line ends

    assert r.content.startswith(b"\x0bMSH|") and r.content.endswith(b"\r\x1c\r")
    assert _acks(r)[0][:2] == ("AA", "CL260309-0002")
    assert CTCDraw.objects.get().ctc_count == 0


def test_it_updates_a_draw_from_a_corrected_result_and_the_history_keeps_both_counts(
    api, oncologist, patient
):
    api.force_authenticate(oncologist)
    _post(api, _body("oru_r01_final.hl7"))

    r = _post(api, _body("oru_r01_corrected.hl7"))

    assert _acks(r) == [
        (
            "AA",
            "CL260303-0007",
            "Corrected (the history keeps the earlier result): accession CS-26-0101",
        )
    ]
    draw = CTCDraw.objects.get()
    assert (draw.ctc_count, draw.version) == (9, 2)
    assert draw.comment == "Corrected: re-review of the image gallery found 2 more CTC."
    history = draw.history.order_by("history_date", "history_id")
    assert [h.ctc_count for h in history] == [7, 9]
    assert history.last().history_change_reason == "Corrected result from lab (HL7 CL260303-0007)"
    assert history.last().history_user == oncologist


def test_it_records_a_corrected_result_for_an_unknown_accession_as_new(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_corrected.hl7"))

    assert _acks(r)[0][:2] == ("AA", "CL260303-0007")
    assert CTCDraw.objects.get().ctc_count == 9


def test_it_changes_nothing_when_a_lab_resends_a_result(api, oncologist, patient):
    api.force_authenticate(oncologist)
    _post(api, _body("oru_r01_final.hl7"))

    r = _post(api, _body("oru_r01_final.hl7"))

    assert _acks(r)[0][2].startswith("Already recorded, no change: accession CS-26-0101")
    assert CTCDraw.objects.get().version == 1


def test_it_refuses_other_values_for_a_recorded_accession_unless_corrected(
    api, oncologist, patient, draw
):
    api.force_authenticate(oncologist)
    body = _body("oru_r01_final.hl7").replace(b"CS-26-0101", draw.accession.encode())

    r = _post(api, body)

    assert _acks(r)[0][0] == "AE"
    ((location, code, text),) = _errs(r)
    assert (location, code) == ("OBR^1^3", "205")
    assert "already recorded with other values" in text
    assert "send a corrected result" in text
    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (3, 1)


def test_it_gives_a_pending_draw_its_result(api, oncologist, patient):
    pending = builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 3, 1, 7, 30, tzinfo=UTC),
        status=DrawStatus.PENDING,
        accession="CS-26-0101",
    )
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_final.hl7"))

    assert _acks(r)[0][2].startswith("Resulted the pending draw: accession CS-26-0101")
    pending.refresh_from_db()
    assert (pending.status, pending.ctc_count) == ("resulted", 7)
    assert pending.history.latest().history_change_reason == "Result from lab (HL7 CL260302-0001)"


def test_it_never_changes_a_draw_marked_entered_in_error(api, oncologist, patient, draw):
    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong patient"
    )
    api.force_authenticate(oncologist)
    body = _body("oru_r01_corrected.hl7").replace(b"CS-26-0101", b"ACC-1")

    r = _post(api, body)

    assert _acks(r)[0][0] == "AE"
    assert "marked as entered in error" in _errs(r)[0][2]
    draw.refresh_from_db()
    assert draw.ctc_count == 3


def test_it_refuses_an_accession_that_belongs_to_another_patient(api, oncologist, patient, draw):
    other = builders.patient(oncologist, given_name="Rita", family_name="Roe")
    api.force_authenticate(oncologist)
    body = _body("oru_r01_corrected.hl7").replace(b"CS-26-0101", b"ACC-1")
    body = body.replace(b"MRN0001", other.mrn.encode())

    r = _post(api, body)

    assert "on record for another patient" in _errs(r)[0][2]
    assert CTCDraw.objects.get().ctc_count == 3


def test_it_records_a_failed_result_as_not_evaluable(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_failed.hl7"))

    assert _acks(r)[0][0] == "AA"
    draw = CTCDraw.objects.get()
    assert (draw.status, draw.ctc_count) == ("failed", None)
    assert draw.comment == "Not evaluable: CellTracks Analyzer II image acquisition failed."


def test_it_records_a_rejected_specimen_with_the_reason(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_rejected_specimen.hl7"))

    assert _acks(r)[0][0] == "AA"
    draw = CTCDraw.objects.get()
    assert (draw.status, draw.ctc_count) == ("rejected", None)
    assert draw.comment.startswith("Specimen rejected: Expired (EX)\nReceived 101 h after")


def test_it_refuses_an_unknown_mrn_and_saves_nothing(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_unknown_mrn.hl7"))

    assert r.status_code == 200
    text = (
        "No patient with MRN MRN9999 in CTC Track: register the patient, "
        "then send the result again."
    )
    assert _acks(r) == [("AE", "CL260310-0005", text)]
    assert _errs(r) == [("PID^1^3", "204", text)]
    assert not CTCDraw.objects.exists()


def test_it_refuses_a_final_result_without_a_count_and_saves_nothing(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_final_without_count.hl7"))

    assert _acks(r)[0][:2] == ("AE", "CL260311-0006")
    assert _errs(r)[0][:2] == ("OBX^2^5", "101")
    assert not CTCDraw.objects.exists()


def test_it_refuses_a_draw_time_in_the_future_naming_the_field(api, oncologist, patient):
    api.force_authenticate(oncologist)
    body = _body("oru_r01_final.hl7").replace(b"20260301083000+0100", b"20990301083000+0100")

    r = _post(api, body)

    assert _acks(r)[0][0] == "AE"
    assert _errs(r) == [("OBX^2^14", "102", "The draw time is in the future.")]
    assert not CTCDraw.objects.exists()


@pytest.mark.parametrize("name", ["malformed.hl7", "adt_a01.hl7"])
def test_it_rejects_a_malformed_or_unsupported_message_with_ar(api, oncologist, patient, name):
    api.force_authenticate(oncologist)

    r = _post(api, _body(name))

    assert r.status_code == 200
    assert _acks(r)[0][0] == "AR"
    assert len(_errs(r)) == 1
    assert not CTCDraw.objects.exists()


def test_it_stores_the_good_message_of_two_and_answers_each(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _body("two_messages_one_bad.hl7"))

    assert [ack[:2] for ack in _acks(r)] == [("AA", "CL260320-0010"), ("AE", "CL260320-0011")]
    assert _errs(r) == [
        ("OBX^1^5", "102", "OBX-5 must be a whole number of cells, 0 or more (got '3.5').")
    ]
    assert list(CTCDraw.objects.values_list("accession", "ctc_count")) == [("CS-26-0110", 2)]


@pytest.mark.parametrize("body", [b"", b"   \r\n", b'{"ctc_count": 5}', b"\x0b\x1c\r"])
def test_it_answers_a_body_without_hl7_with_400_and_an_ar(api, oncologist, body):
    api.force_authenticate(oncologist)

    r = _post(api, body)

    assert r.status_code == 400
    assert r["Content-Type"] == "application/hl7-v2; charset=utf-8"
    assert _acks(r)[0][0] == "AR"
    assert "No HL7 message found" in _acks(r)[0][2]


def test_it_accepts_a_lab_interface_token(api, oncologist, patient):
    token_key = api_token(oncologist)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")

    r = _post(api, _body("oru_r01_final.hl7"))

    assert r.status_code == 200
    assert CTCDraw.objects.get().entered_by == oncologist


def test_it_forbids_nurses_with_an_ar_and_saves_nothing(api, nurse, patient):
    api.force_authenticate(nurse)

    r = _post(api, _body("oru_r01_final.hl7"))

    assert (r.status_code, r["Content-Type"]) == (403, "application/hl7-v2; charset=utf-8")
    assert _acks(r) == [("AR", "", "You do not have permission to perform this action.")]
    assert not CTCDraw.objects.exists()


def test_it_forbids_users_without_a_role(api, outsider, patient):
    api.force_authenticate(outsider)

    r = _post(api, _body("oru_r01_final.hl7"))

    assert (r.status_code, _acks(r)[0][0]) == (403, "AR")


def test_it_asks_anonymous_callers_to_authenticate_in_an_ack(api, patient):
    r = _post(api, _body("oru_r01_final.hl7"))

    assert (r.status_code, r["Content-Type"]) == (401, "application/hl7-v2; charset=utf-8")
    assert r["WWW-Authenticate"] == "Token"
    assert _acks(r) == [("AR", "", "Authentication credentials were not provided.")]
    assert not CTCDraw.objects.exists()


def test_it_takes_only_post_and_says_so_in_an_ack(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.get(URL)

    assert (r.status_code, r["Allow"]) == (405, "POST")
    assert _acks(r) == [("AR", "", 'Method "GET" not allowed.')]


# --- size, batches, transactions ---------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def _with_report(size: int) -> bytes:
    """The final result with its printed report embedded (OBX ED, base64): `size` bytes."""
    message = _body("oru_r01_final.hl7").rstrip(b"\r")
    head = message + b"\rOBX|4|ED|11502-2^Laboratory report^LN||^application^pdf^Base64^"
    return head + b"A" * (size - len(head) - 1) + b"\r"


def test_it_takes_a_message_of_10_mb(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _with_report(TEN_MB))

    assert r.status_code == 200
    assert _acks(r)[0][:2] == ("AA", "CL260302-0001")
    assert CTCDraw.objects.get().ctc_count == 7


def test_it_refuses_a_body_over_10_mb_with_413_and_an_ar(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = _post(api, _with_report(TEN_MB + 1))

    assert (r.status_code, r["Content-Type"]) == (413, "application/hl7-v2; charset=utf-8")
    assert _acks(r) == [
        ("AR", "", "The request is larger than 10 MB, the most taken: send it in parts.")
    ]
    assert not CTCDraw.objects.exists()


def _messages(count: int) -> bytes:
    """`count` messages of one result each: control IDs B-0 to B-<count-1>."""
    message = _body("oru_r01_final.hl7")
    return b"".join(
        message.replace(b"CL260302-0001", f"B-{n}".encode()).replace(
            b"CS-26-0101", f"CS-B-{n}".encode()
        )
        for n in range(count)
    )


def test_it_refuses_a_batch_over_the_limit_whole_and_takes_it_in_parts(
    api, oncologist, patient, settings
):
    settings.CTCTRACK_HL7_MAX_MESSAGES_PER_REQUEST = 2
    api.force_authenticate(oncologist)
    text = (
        "This request holds 3 messages; at most 2 are taken per request. Nothing in it was "
        "stored: send the messages in smaller batches."
    )

    r = _post(api, _messages(3))

    assert r.status_code == 413
    assert _acks(r) == [("AR", f"B-{n}", text) for n in range(3)]
    assert not CTCDraw.objects.exists()
    assert [a[0] for a in _acks(_post(api, _messages(2)))] == ["AA", "AA"]


def test_a_limit_of_one_message_per_request_is_said_in_the_singular(
    api, oncologist, patient, settings
):
    settings.CTCTRACK_HL7_MAX_MESSAGES_PER_REQUEST = 1
    api.force_authenticate(oncologist)

    r = _post(api, _messages(2))

    assert _acks(r)[0][2].startswith(
        "This request holds 2 messages; at most 1 is taken per request."
    )


@pytest.mark.django_db(transaction=True)
def test_each_message_of_a_batch_is_committed_on_its_own(api, oncologist, patient, monkeypatch):
    """An internal error on the second message leaves the first one stored (its own
    transaction, not the request's) and is answered with an AR, never an HTML page."""
    api.force_authenticate(oncologist)
    record = services.record_lab_results
    calls = []

    def fails_the_second_time(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return record(**kwargs)

    monkeypatch.setattr(services, "record_lab_results", fails_the_second_time)

    r = _post(api, _messages(2))

    assert (r.status_code, r["Content-Type"]) == (500, "application/hl7-v2; charset=utf-8")
    assert _acks(r)[0][0] == "AR"
    assert list(CTCDraw.objects.values_list("accession", flat=True)) == ["CS-B-0"]


# --- the database down --------------------------------------------------------------------

UNAVAILABLE = (
    "The record could not be reached (database unavailable): send the message again later. "
    "A result already stored is recognised and never filed twice."
)


def _assert_unavailable(r, *control_ids: str) -> None:
    """503, when to try again, and an AR (ERR 207) echoing each message's control ID."""
    assert (r.status_code, r["Content-Type"]) == (503, "application/hl7-v2; charset=utf-8")
    assert r["Retry-After"] == "30"
    assert _acks(r) == [("AR", control_id, UNAVAILABLE) for control_id in control_ids]
    assert _errs(r) == [("MSH", "207", UNAVAILABLE)] * len(control_ids)


def test_with_the_database_down_a_lab_signed_in_by_token_gets_an_ar_to_send_again(
    api, oncologist, patient, tmp_path
):
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(oncologist)}")

    with unreachable_database(tmp_path):
        r = _post(api, _messages(2))

    _assert_unavailable(r, "B-0", "B-1")
    assert [a[0] for a in _acks(_post(api, _messages(2)))] == ["AA", "AA"]  # sent again


def test_with_the_database_down_a_session_gets_an_ar_not_a_json_page(oncologist, tmp_path):
    # The session is read by the middleware, before the view: the outage is met there.
    client = Client(raise_request_exception=False)
    client.force_login(oncologist)

    with unreachable_database(tmp_path):
        r = client.generic("POST", URL, data=_body("oru_r01_final.hl7"), content_type="text/plain")

    _assert_unavailable(r, "CL260302-0001")


def test_with_the_database_down_a_framed_request_gets_framed_acks(api, oncologist, tmp_path):
    api.force_authenticate(oncologist)
    framed = b"\x0b" + _body("oru_r01_final.hl7") + b"\x1c\r"

    with unreachable_database(tmp_path):
        r = _post(api, framed)

    assert r.content.startswith(b"\x0bMSH|") and r.content.endswith(b"\x1c\r")
    _assert_unavailable(r, "CL260302-0001")


def test_with_the_database_down_a_body_without_hl7_gets_one_ar(api, oncologist, tmp_path):
    api.force_authenticate(oncologist)

    with unreachable_database(tmp_path):
        r = _post(api, b'{"ctc_count": 5}')

    _assert_unavailable(r, "")


@pytest.mark.django_db(transaction=True)
def test_a_database_lost_while_storing_answers_each_message_to_send_again(
    api, oncologist, patient, tmp_path, monkeypatch
):
    """The first message is stored; the database goes away before the second: both are
    answered AR to send again, and the first, sent again, is recognised."""
    api.force_authenticate(oncologist)
    record = services.record_lab_results
    outage = ExitStack()

    def database_lost_after_the_first(**kwargs):
        outcome = record(**kwargs)
        outage.enter_context(unreachable_database(tmp_path))
        return outcome

    monkeypatch.setattr(services, "record_lab_results", database_lost_after_the_first)
    with outage:
        r = _post(api, _messages(2))
    monkeypatch.undo()

    _assert_unavailable(r, "B-0", "B-1")
    assert list(CTCDraw.objects.values_list("accession", flat=True)) == ["CS-B-0"]
    again = _acks(_post(api, _messages(2)))
    assert [a[:2] for a in again] == [("AA", "B-0"), ("AA", "B-1")]
    assert again[0][2].startswith("Already recorded, no change: accession CS-B-0")


# --- the command -----------------------------------------------------------------------------


def _import(*names: str, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_hl7", *[str(DATA / n) for n in names], stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_import_hl7_stores_results_as_the_lab_interface_account(patient):
    out, _ = _import("oru_r01_final.hl7", "oru_r01_failed.hl7")

    assert out.splitlines() == [
        "oru_r01_final.hl7: CL260302-0001 AA Recorded: accession CS-26-0101; "
        "2 other results not kept (not CTC counts)",
        "oru_r01_failed.hl7: CL260316-0003 AA Recorded: accession CS-26-0103",
        "2 of 2 messages accepted.",
    ]
    account = get_user_model().objects.get(username="lab-interface")
    assert set(CTCDraw.objects.values_list("entered_by", flat=True)) == {account.pk}
    assert not account.is_active and not account.has_usable_password()


def test_import_hl7_counts_one_message_in_the_singular(patient):
    out, _ = _import("oru_r01_failed.hl7")

    assert out.splitlines()[-1] == "1 of 1 message accepted."


def test_import_hl7_fails_when_a_message_is_not_accepted_and_keeps_the_good_ones(patient):
    out = StringIO()

    with pytest.raises(CommandError, match="1 of 2 messages accepted; 1 not accepted"):
        call_command(
            "import_hl7", str(DATA / "two_messages_one_bad.hl7"), stdout=out, stderr=StringIO()
        )

    assert out.getvalue().splitlines() == [
        "two_messages_one_bad.hl7: CL260320-0010 AA Recorded: accession CS-26-0110",
        "two_messages_one_bad.hl7: CL260320-0011 AE OBX-5 must be a whole number of cells, "
        "0 or more (got '3.5').",
    ]
    assert list(CTCDraw.objects.values_list("accession", flat=True)) == ["CS-26-0110"]


def test_import_hl7_reports_malformed_and_unsupported_messages(patient):
    out = StringIO()

    with pytest.raises(CommandError, match="0 of 2 messages accepted"):
        call_command(
            "import_hl7", str(DATA / "malformed.hl7"), str(DATA / "adt_a01.hl7"), stdout=out
        )

    assert out.getvalue().splitlines() == [
        "malformed.hl7: CL260312-0008 AR OBX arrived before any OBR.",
        "adt_a01.hl7: PAS-778812 AR Message type ADT is not accepted: send ORU^R01 results.",
    ]


def test_import_hl7_lists_every_problem_of_a_message(patient, tmp_path):
    broken = tmp_path / "broken.hl7"
    text = (DATA / "oru_r01_final_without_count.hl7").read_text()
    broken.write_text(text.replace("CS-26-0106^CITYLAB", "").replace("20260310081000+0100", ""))
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("import_hl7", str(broken), stdout=out)

    assert out.getvalue().splitlines() == [
        "broken.hl7: CL260311-0006 AE No accession: OBR-3 and ORC-3 (filler order number) are "
        "both empty. (and 2 more: see ERR)",
        "    OBR^1^7: No draw time: OBX-14, OBR-7 and SPM-17 (observation and collection "
        "date/time) are all empty.",
        "    OBX^2^5: OBX-5 (the count) is empty on a final result; send the count, or OBX-11 X "
        "if the result could not be obtained.",
    ]


def test_import_hl7_dry_run_checks_each_message_against_the_earlier_ones_and_saves_nothing(
    patient,
):
    out, _ = _import("oru_r01_final.hl7", "oru_r01_corrected.hl7", dry_run=True)

    assert out.splitlines()[1] == (
        "oru_r01_corrected.hl7: CL260303-0007 AA Corrected (the history keeps the earlier "
        "result): accession CS-26-0101"
    )
    assert out.splitlines()[-1] == "2 of 2 messages accepted (dry run: nothing saved)."
    assert not CTCDraw.objects.exists()
    assert not get_user_model().objects.filter(username="lab-interface").exists()


def test_import_hl7_dry_run_still_fails_on_a_bad_message(patient):
    with pytest.raises(CommandError, match="dry run: nothing saved"):
        _import("oru_r01_unknown_mrn.hl7", dry_run=True)


def test_import_hl7_enters_results_as_a_named_user(patient, oncologist):
    _import("oru_r01_final.hl7", user="olivia")

    assert CTCDraw.objects.get().entered_by == oncologist


def test_import_hl7_refuses_an_unknown_user_and_saves_nothing(patient):
    with pytest.raises(CommandError, match="No active user named 'nobody'"):
        _import("oru_r01_final.hl7", user="nobody")

    assert not CTCDraw.objects.exists()


def test_import_hl7_refuses_a_file_it_cannot_read(patient):
    with pytest.raises(CommandError, match="Cannot read"):
        _import("no-such-file.hl7")


def test_import_hl7_rejects_a_file_without_hl7(patient, tmp_path):
    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"\n")

    with pytest.raises(CommandError):
        call_command("import_hl7", str(empty), stdout=(out := StringIO()), stderr=StringIO())

    assert "empty.hl7: (no control ID) AR No HL7 message found" in out.getvalue()


def test_import_hl7_shows_progress_on_stderr_for_many_messages(patient, tmp_path):
    template = (DATA / "oru_r01_final.hl7").read_text()
    many = tmp_path / "many.hl7"
    many.write_text(
        "".join(
            template.replace("CS-26-0101", f"CS-26-{n:04}").replace("CL260302-0001", f"M{n}")
            for n in range(25)
        )
    )

    out, err = _import(str(many))

    assert "25 of 25 messages accepted." in out
    assert "25/25" in err
    assert CTCDraw.objects.count() == 25


# --- care teams -----------------------------------------------------------------------


def test_a_result_for_another_teams_patient_is_refused_as_an_unknown_mrn(
    api, oncologist, nurse, patient
):
    """MRN0001 (the sample's patient) is South's; the sending account is North's."""
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    north.members.add(oncologist)
    south.members.add(nurse)
    services.teams.add_patients_to_team(south, [patient], by=None)
    api.force_authenticate(oncologist)
    unknown = _post(api, _body("oru_r01_unknown_mrn.hl7"))

    r = _post(api, _body("oru_r01_final.hl7"))

    text = (
        "No patient with MRN MRN0001 in CTC Track: register the patient, "
        "then send the result again."
    )
    assert _acks(r) == [("AE", "CL260302-0001", text)]
    assert _errs(r) == [("PID^1^3", "204", text)]
    assert [e[:2] for e in _errs(r)] == [e[:2] for e in _errs(unknown)]
    assert not CTCDraw.objects.exists()


def test_a_result_for_a_patient_of_the_accounts_team_is_recorded(api, oncologist, patient):
    north = services.teams.create_team("North")
    services.teams.create_team("South")
    north.members.add(oncologist)
    services.teams.add_patients_to_team(north, [patient], by=None)
    api.force_authenticate(oncologist)

    r = _post(api, _body("oru_r01_final.hl7"))

    assert _acks(r)[0][0] == "AA"
    assert CTCDraw.objects.get().patient == patient


def test_a_second_team_applies_to_the_next_message_of_an_account_that_stays_signed_in(
    api, oncologist, patient
):
    """The MLLP listener acts as one account object for as long as it runs."""
    north = services.teams.create_team("North")
    north.members.add(oncologist)
    api.force_authenticate(oncologist)  # one user object for every request, as the listener
    _post(api, _body("oru_r01_unknown_mrn.hl7"))  # one team: every patient may be found

    south = services.teams.create_team("South")
    services.teams.add_patients_to_team(south, [patient], by=None)
    r = _post(api, _body("oru_r01_final.hl7"))

    assert _acks(r)[0][0] == "AE"
    assert not CTCDraw.objects.exists()
