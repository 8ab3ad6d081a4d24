"""`POST /api/v1/hl7/oru/`: the HTTP face of `receive.receive_hl7`."""

from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from patients import audit
from patients.accounts.permissions import every_method
from patients.interop.hl7.receive import Receipt, receive_hl7
from patients.models import AccessAction

HL7_CONTENT_TYPE = "application/hl7-v2; charset=utf-8"


class AnyAccept(BaseContentNegotiation):
    """Lab interfaces send Accept headers of their own; the answer is always the same."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))  # the view's first renderer, whatever was asked for
        return renderer, renderer.media_type


class Hl7Oru(APIView):
    """`POST /api/v1/hl7/oru/`: ORU^R01 messages in, one ACK per message out.

    200 whenever the messages were processed, accepted (AA) or not (AE, AR);
    400 with an AR when the body holds no HL7 message at all.
    """

    parser_classes: list[type[BaseParser]] = []  # the body is read raw: labs send any Content-Type
    renderer_classes = [JSONRenderer]  # only for DRF's own 401 and 403 answers
    content_negotiation_class = AnyAccept
    # Lab results add draws and correct them: both permissions (oncologists, staff).
    required_perms = every_method("patients.add_ctcdraw", "patients.change_ctcdraw")
    http_method_names = ["post"]

    def post(self, request: Request) -> HttpResponse:
        delivery = receive_hl7(request.body, by=request.user)
        for receipt in delivery.receipts:
            _audit_import(request, receipt)
        return HttpResponse(
            delivery.acks().encode("utf-8"),
            status=200 if delivery.readable else 400,
            content_type=HL7_CONTENT_TYPE,
        )


def _audit_import(request: Request, receipt: Receipt) -> None:
    """One access-log event per message processed, naming the patients it touched."""
    audit.record_read(
        request,
        AccessAction.IMPORT,
        patient_ids=[o.draw.patient_id for o in receipt.outcomes],
        what=f"HL7 {receipt.header.control_id}: {receipt.code}",
    )
