"""`POST /api/v1/hl7/oru/`: the HTTP face of `receive.receive_hl7`.

Every answer is HL7: the ACKs of the messages, or one AR saying why the request
was refused (too large, not signed in, not allowed, an internal error), never an
HTML or JSON page that an interface engine cannot read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    NotAuthenticated,
)
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ctctrack.middleware import RETRY_AFTER_SECONDS, is_database_outage
from patients.accounts.permissions import every_method
from patients.interop.hl7.receive import (
    MAX_BODY_BYTES,
    Delivery,
    receive_hl7,
    record_import,
    refuse_body,
    refuse_unavailable,
)

HL7_CONTENT_TYPE = "application/hl7-v2; charset=utf-8"

logger = logging.getLogger(__name__)


class AnyAccept(BaseContentNegotiation):
    """Lab interfaces send Accept headers of their own; the answer is always the same."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))  # the view's first renderer, whatever was asked for
        return renderer, renderer.media_type


class Hl7Renderer(BaseRenderer):
    """ACKs as they are: ER7 text, segments ending with CR."""

    media_type = "application/hl7-v2"
    format = "hl7"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return str(data).encode(self.charset)


class Hl7Oru(APIView):
    """`POST /api/v1/hl7/oru/`: ORU^R01 messages in, one ACK per message out.

    200 whenever the messages were processed, accepted (AA) or not (AE, AR);
    400 with an AR when the body holds no HL7 message at all; 413 with an AR
    for a body over 10 MB or more messages than `CTCTRACK_HL7_MAX_MESSAGES_PER_REQUEST`;
    503 with `Retry-After` and an AR for each message (its control ID echoed) while
    the database cannot be reached, whether sign-in or storing found it down.
    Not one transaction for the request (ATOMIC_REQUESTS): each message is
    stored in its own, so an ACK once built stays true.
    """

    parser_classes: list[type[BaseParser]] = []  # the body is read raw: labs send any Content-Type
    renderer_classes = [Hl7Renderer]  # for the refusals answered in handle_exception
    content_negotiation_class = AnyAccept
    # Lab results add draws and correct them: both permissions (oncologists, staff).
    required_perms = every_method("patients.add_ctcdraw", "patients.change_ctcdraw")
    http_method_names = ["post"]
    received: bytes | None = None  # the body, once read: an outage's ACKs echo its messages

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = transaction.non_atomic_requests(super().as_view(**initkwargs))
        # What DatabaseUnavailableMiddleware answers when the outage is met before
        # the view runs (a session's sign-in): HL7, as every other answer here.
        view.answer_database_outage = database_unavailable  # type: ignore[attr-defined]
        return view

    def post(self, request: Request) -> HttpResponse:
        body = self.received = _body(request)
        if body is None:
            limit = f"{MAX_BODY_BYTES // (1024 * 1024)} MB"
            text = f"The request is larger than {limit}, the most taken: send it in parts."
            return _answer(refuse_body(text), status=413)
        delivery = receive_hl7(
            body, by=request.user, max_messages=settings.CTCTRACK_HL7_MAX_MESSAGES_PER_REQUEST
        )
        for receipt in delivery.receipts:
            record_import(receipt, request=request)
        status = 413 if delivery.too_many else 200 if delivery.readable else 400
        return _answer(delivery, status=status)

    def handle_exception(self, exc: Exception) -> Response:
        """DRF's refusals (401, 403, 405, 429), outages and internal errors, as an AR."""
        if is_database_outage(exc):
            logger.error("Database unavailable (%s): HL7 answered AR", type(exc).__name__)
            # Met signing in (a token) or storing: the body is read here if not yet.
            body = self.received if self.received is not None else _body(self.request)
            delivery = refuse_unavailable(body or b"")
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return Response(delivery.acks(), status=503, headers=retry)
        if not isinstance(exc, APIException):
            logger.exception("HL7 request failed", exc_info=exc)
            text = (
                "CTC Track could not process the request (internal error); messages "
                "acknowledged in an earlier answer are kept. Send the request again later: "
                "results already stored are recognised."
            )
            return Response(refuse_body(text).acks(), status=500)
        # What DRF's handler would answer, without its set_rollback(): the view holds
        # no transaction of its own (non_atomic_requests), and the caller's must stand.
        status, auth = exc.status_code, None
        if isinstance(exc, NotAuthenticated | AuthenticationFailed):
            auth = self.get_authenticate_header(self.request)
            status = 401 if auth else 403
        headers = {"WWW-Authenticate": auth} if auth else {}
        wait = getattr(exc, "wait", None)  # Throttled: seconds until the next request
        if wait is not None:
            headers["Retry-After"] = str(math.ceil(wait))
        return Response(refuse_body(str(exc.detail)).acks(), status=status, headers=headers)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """503: an AR for each message of the request, its control ID echoed, and when to
    try again. The body is read here when the outage came before the view read it."""
    response = _answer(refuse_unavailable(_body(request) or b""), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _body(request: Request | HttpRequest) -> bytes | None:
    """The raw body, or None when it is over `MAX_BODY_BYTES` (Django's own limit,
    `DATA_UPLOAD_MAX_MEMORY_SIZE`, is for forms: this view reads the stream itself)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None
    body = request.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


def _answer(delivery: Delivery, *, status: int) -> HttpResponse:
    return HttpResponse(
        delivery.acks().encode("utf-8"), status=status, content_type=HL7_CONTENT_TYPE
    )
