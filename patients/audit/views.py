"""The staff-only audit report over the access log, and the page every refusal gets.

The report filters by date range (UTC days), user, patient (the events naming them, and
those listing them among several), action and care team, sorts on
any column, pages, and exports the filtered rows as CSV. Looking at it and
exporting it are themselves recorded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import islice
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from ctctrack.forms import DateInput
from ctctrack.http import AuthenticatedHttpRequest
from ctctrack.pagination import CountedAheadPaginator
from ctctrack.spreadsheets import safe_text
from patients import access, audit
from patients.audit import chain
from patients.models import (
    AccessAction,
    AccessEvent,
    AccessEventPatient,
    AccessOutcome,
    CareTeam,
)

PAGE_SIZE = 50
# The report counts the events matching its filters only this far beyond the page asked
# for ("more than 1,050 events"): a log of millions, filtered by a care team, would
# otherwise be read whole to count it.
COUNTED_AHEAD = 1000
# A care team holding at least this share of the clinic's patients is found in a large
# share of the events: the report then reads the events newest first and keeps those
# about the team, rather than gathering all of the team's events to sort them.
DENSE_TEAM_SHARE = 0.01
# Events exported at a time (and their listed patients read for them in one query).
CSV_CHUNK = 2000
# Sortable columns: the name in `?sort=` and the field it orders by.
SORTS = {
    "id": "id",
    "at": "at",
    "user": "username",
    "patient": "patient_id",
    "action": "action",
    "outcome": "outcome",
    "target": "target",
    "address": "client_address",
}
COLUMN_LABELS = {
    "id": "Event",
    "at": "Date and time (UTC)",
    "user": "User",
    "patient": "Patient",
    "action": "Action",
    "outcome": "Outcome",
    "target": "What was touched",
    "address": "Client address",
}
DEFAULT_SORT = "-at"
CSV_HEADER = [
    "event",
    "at_utc",
    "user_id",
    "username",
    "patient_id",
    "listed_patient_ids",
    "action",
    "outcome",
    "target",
    "client_address",
    "prev_hash",
    "hash",
]


class AuditFilterForm(forms.Form):
    """Filters of the audit report. Every field is optional; the dates are UTC days."""

    start = forms.DateField(label="From (UTC)", required=False, widget=DateInput())
    end = forms.DateField(label="To (UTC), inclusive", required=False, widget=DateInput())
    user = forms.CharField(label="Username", max_length=150, required=False)
    patient = forms.IntegerField(label="Patient id", min_value=1, required=False)
    mrn = forms.CharField(label="or MRN", max_length=32, required=False)
    action = forms.ChoiceField(
        label="Action", choices=[("", "Any action"), *AccessAction.choices], required=False
    )
    # The events of the patients of one care team (by id in the URL: a team's name may
    # say where a patient is treated).
    team = forms.ModelChoiceField(
        CareTeam.objects.all(),
        label="Care team",
        empty_label="Any care team",
        required=False,
        error_messages={"invalid_choice": "No care team has this id."},
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user  # patients are looked up among those the user may see
        if not CareTeam.objects.exists():  # one clinic: nothing to filter by
            del self.fields["team"]
        # The query names are `from` and `to`, which Python keeps for itself.
        renamed = {"start": "from", "end": "to"}
        self.fields = {renamed.get(name, name): field for name, field in self.fields.items()}

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        start, end = data.get("from"), data.get("to")
        if start and end and end < start:
            self.add_error("to", "The end date cannot be before the start date.")
        if (
            data.get("patient")
            and not access.patients(self.user).filter(pk=data["patient"]).exists()
        ):
            self.add_error("patient", "No patient has this id.")
        if data.get("mrn"):
            self._resolve_mrn(data)
        return data

    def _resolve_mrn(self, data: dict[str, Any]) -> None:
        found = (
            access.patients(self.user).filter(mrn=data["mrn"]).values_list("pk", flat=True).first()
        )
        if found is None:
            self.add_error("mrn", "No patient has this MRN.")
        elif data.get("patient") and data["patient"] != found:
            self.add_error("mrn", "This MRN belongs to another patient than the id given.")
        else:
            data["patient"] = found

    def query(self) -> dict[str, str]:
        """The filters as URL parameters, the patient by id only (an MRN is PHI)."""
        data = self.cleaned_data
        values = {
            "from": data["from"].isoformat() if data.get("from") else "",
            "to": data["to"].isoformat() if data.get("to") else "",
            "user": data.get("user") or "",
            "patient": str(data["patient"]) if data.get("patient") else "",
            "action": data.get("action") or "",
            "team": str(data["team"].pk) if data.get("team") else "",
        }
        return {name: value for name, value in values.items() if value}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    href: str
    aria_sort: str


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def audit_report(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The access log for staff. The filter form posts here and is redirected to a
    URL carrying the filters, so that an MRN typed in never appears in a URL."""
    if not request.user.is_staff:
        raise PermissionDenied
    form = AuditFilterForm(
        request.POST if request.method == "POST" else request.GET, user=request.user
    )
    if not form.is_valid():
        return render(request, "audit/report.html", {"form": form}, status=400)
    query = form.query()
    if request.method == "POST" or form.cleaned_data.get("mrn"):
        return redirect(f"{reverse('audit:report')}?{urlencode(query)}")
    sort = request.GET.get("sort", "")
    sort = sort if sort.lstrip("-") in SORTS else DEFAULT_SORT
    events = filtered_events(form.cleaned_data, request.user).order_by(*_ordering(sort))
    patient_id = form.cleaned_data.get("patient")
    if request.GET.get("format") == "csv":
        # The rows stream after this request has ended: fix them as they stand now,
        # without the export's own event.
        last_id = AccessEvent.objects.aggregate(last=Max("id"))["last"] or 0
        described = f"access log CSV {urlencode({**query, 'sort': sort})}"
        audit.record(request, AccessAction.EXPORT, patient=patient_id, target=described)
        return _csv_response(events.filter(id__lte=last_id))
    paginator = CountedAheadPaginator(
        events.select_related("patient"), PAGE_SIZE, ahead=COUNTED_AHEAD
    )
    page = paginator.get_page(request.GET.get("page"))
    described = f"audit report page {page.number} {urlencode({**query, 'sort': sort})}"
    audit.record(request, AccessAction.AUDIT_REPORT, patient=patient_id, target=described)
    ctx = {
        "form": form,
        "page": page,
        "columns": _columns(query, sort),
        "query": urlencode({**query, "sort": sort}),
        "csv_query": urlencode({**query, "sort": sort, "format": "csv"}),
    }
    return render(request, "audit/report.html", ctx)


def filtered_events(filters: dict[str, Any], user: Any) -> QuerySet[AccessEvent]:
    """Events matching the report's filters; `to` includes its whole UTC day; `team`: the
    events naming or listing a patient of that care team (among those `user` may see)."""
    when = {}
    if filters.get("from"):
        when["at__gte"] = datetime.combine(filters["from"], time.min, tzinfo=UTC)
    if filters.get("to"):
        when["at__lt"] = datetime.combine(filters["to"] + timedelta(days=1), time.min, tzinfo=UTC)
    events = AccessEvent.objects.filter(**when)
    if filters.get("user"):
        events = events.filter(username=filters["user"])
    if filters.get("patient"):
        events = events.filter(pk__in=naming([filters["patient"]], when))
    if filters.get("action"):
        events = events.filter(action=filters["action"])
    if filters.get("team"):
        visible = access.patients(user)
        of_team = visible.filter(care_teams=filters["team"]).values("pk")
        if of_team.count() >= DENSE_TEAM_SHARE * visible.count():
            events = events.filter(about_any_of(of_team))
        else:
            events = events.filter(pk__in=naming(of_team, when))
    return events


def about_any_of(patients: QuerySet[Any]) -> Q:
    """The events naming or listing any of `patients`, tested event by event: for many
    patients, whose events are everywhere in the log, so that the newest page is found by
    reading the newest events (`naming` would first gather them all)."""
    listed = AccessEventPatient.objects.filter(event=OuterRef("pk"), patient__in=patients)
    return Q(patient__in=patients) | Q(Exists(listed))


def naming(patients: Any, when: dict[str, datetime]) -> QuerySet[Any]:
    """The ids of the events about any of `patients` (ids, or a query of them) in the
    time range `when` (`at__gte`, `at__lt`): those naming one of them, and those listing
    one among others (a list's page, an export, a message: `AccessEventPatient`), each
    half through its own index, the range applied in both so that neither gathers a
    patient's whole history first."""
    named = AccessEvent.objects.filter(patient__in=patients, **when).values("pk")
    listed = AccessEventPatient.objects.filter(
        patient__in=patients, **{f"event__{lookup}": value for lookup, value in when.items()}
    ).values("event_id")
    return named.union(listed, all=True)


def _ordering(sort: str) -> list[str]:
    """The sorted column, then the event id in the same direction, for a stable order."""
    descending = sort.startswith("-")
    prefix = "-" if descending else ""
    return [prefix + SORTS[sort.lstrip("-")], prefix + "id"]


def _columns(query: dict[str, str], sort: str) -> list[Column]:
    """The table's headings: each links to sorting by it (again: the other way round)."""
    current, descending = sort.lstrip("-"), sort.startswith("-")
    columns = []
    for key, label in COLUMN_LABELS.items():
        next_sort = key if key != current or descending else f"-{key}"
        aria = ("descending" if descending else "ascending") if key == current else ""
        href = f"?{urlencode({**query, 'sort': next_sort})}"
        columns.append(Column(key, label, href, aria))
    return columns


class _Echo:
    """A file-like object that hands back what csv.writer writes, for streaming."""

    def write(self, value: str) -> str:
        return value


def _csv_response(events: QuerySet[AccessEvent]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in _csv_rows(events))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="access-log-{stamp}.csv"'
    return response


def _csv_rows(events: QuerySet[AccessEvent]) -> Iterator[list[str]]:
    """The header, then one row per event, streamed from the database in chunks (each
    chunk's listed patients in one more query)."""
    yield CSV_HEADER
    fields = ["id", "at", "user_id", "username", "patient_id"]
    rest = ["action", "outcome", "target", "client_address", "prev_hash", "hash"]
    rows = events.values_list(*fields, *rest).iterator(chunk_size=CSV_CHUNK)
    while chunk := list(islice(rows, CSV_CHUNK)):
        listed = chain.listed_patients([row[0] for row in chunk])
        for row in chunk:
            at = row[1].astimezone(UTC).isoformat(timespec="microseconds")
            shown = " ".join(map(str, listed.get(row[0], [])))
            yield [_cell(value) for value in (row[0], at, *row[2:5], shown, *row[5:])]


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula.

    A failed sign-in's username is whatever was typed, `=HYPERLINK(...)` included.
    """
    return safe_text("" if value is None else str(value))


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: the refusal page, and the refusal in the access log.

    Django calls this after the refused view's transaction has been rolled
    back; `AuditMiddleware` then writes the event in a transaction of its own.
    """
    audit.record(
        request,
        AccessAction.PERMISSION_DENIED,
        outcome=AccessOutcome.DENIED,
        target=f"{request.method} {request.path}",
    )
    return render(request, "403.html", status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a refused form post is a permission denial like any other,
    so it is in the access log too (an anonymous flood of them, counted rather than
    written one by one). The page says what to do, not why in detail."""
    target = f"{request.method} {request.path} (CSRF check failed)"
    if request.user.is_authenticated:
        audit.record(
            request, AccessAction.PERMISSION_DENIED, outcome=AccessOutcome.DENIED, target=target
        )
    else:
        audit.record_anonymous_refusal(request, AccessAction.PERMISSION_DENIED, target=target)
    return render(request, "403_csrf.html", status=403)
