"""CSV pages: upload with a preview before anything is saved, and exports.

The upload keeps the file's text in the (server-side, database) session
between the preview and the confirmation, together with its digest; the
confirmation re-reads and re-plans it against the record as it is then, so a
draw someone entered in the meantime is recognised, not duplicated. The
preview's same-day warnings are kept too: when the record has changed so that
they differ, the confirmation shows the new preview instead of importing.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from ctctrack.forms import focus_first_error
from patients import access, assessment, audit, wording
from patients.interop.csv import exports as csv_export
from patients.interop.csv import importer
from patients.interop.csv.imports import CsvFileError, ImportPlan
from patients.models import AccessAction

SESSION_KEY = "csv_import"
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
PREVIEW_ROWS = 200
EXPORT_PATIENTS_PER_QUERY = 200


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns: mrn, drawn_at (2026-12-03 08:30), status, ctc_count (>1000 for a "
        "lower bound); optional: blood_volume_ml (default 7.5), count_qualifier, accession, "
        "comment. Times without an offset are clinic time. CSV UTF-8, Excel's CSV or "
        "Unicode Text; separated by commas, semicolons or tabs.",
    )
    file_name = ""  # the uploaded file's, once clean
    encoding = ""  # how its bytes were read, once clean

    def full_clean(self) -> None:
        super().full_clean()
        focus_first_error(self)  # the page opens on the file field, its error read out

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        self.file_name = upload.name  # never empty: FileField refuses a file without a name
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                "The file is larger than 5 MB; split it or use the command."
            )
        try:
            text, self.encoding = importer.read_file(upload.read())
        except CsvFileError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return text


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
@permission_required("patients.add_ctcdraw", raise_exception=True)
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        text, name, encoding = form.cleaned_data["file"], form.file_name, form.encoding
        plan = importer.plan_csv(text, by=request.user, encoding=encoding)
        request.session[SESSION_KEY] = {
            "name": name,
            "text": text,
            "encoding": encoding,
            "digest": _digest(text),
            "warnings": _warnings_digest(plan),
        }
        return _preview(request, plan, name, _digest(text))
    status = 400 if request.method == "POST" else 200
    ctx = {
        "form": form,
        "date_format": settings.CTCTRACK_CSV_DATE_FORMAT,
        "max_rows": f"{settings.CTCTRACK_CSV_MAX_ROWS:,}",
    }
    return render(request, "imports/upload.html", ctx, status=status)


@require_POST
@login_required
@permission_required("patients.add_ctcdraw", raise_exception=True)
def confirm(request: HttpRequest) -> HttpResponse:
    stored = request.session.get(SESSION_KEY)
    if not stored or stored["digest"] != request.POST.get("digest"):
        messages.error(request, "That upload is no longer waiting; upload the file again.")
        return redirect("patients:csv-upload")
    plan = importer.plan_csv(
        stored["text"], by=request.user, encoding=stored.get("encoding", "UTF-8")
    )
    if _warnings_digest(plan) != stored.get("warnings"):
        # The record changed since the preview: the user confirms what she has seen.
        stored["warnings"] = _warnings_digest(plan)
        request.session[SESSION_KEY] = stored
        messages.warning(
            request,
            "The record has changed since the file was checked: check the file again.",
        )
        return _preview(request, plan, stored["name"], stored["digest"])
    if not plan.ok or not plan.new:  # nothing to import: show why
        return _preview(request, plan, stored["name"], stored["digest"])
    try:
        importer.import_plan(
            plan,
            by=request.user,
            source=stored["name"],
            channel="CSV upload",
            request=request,
            limits=plan.limits,  # checking again and saving, within one request's time
        )
    except importer.ImportTooLong as exc:
        del request.session[SESSION_KEY]
        messages.error(request, str(exc))
        return redirect("patients:csv-upload")
    del request.session[SESSION_KEY]
    messages.success(
        request,
        f"Imported {wording.how_many(len(plan.new), 'draw')} from {stored['name']}; "
        f"{len(plan.unchanged)} {'was' if len(plan.unchanged) == 1 else 'were'} already recorded.",
    )
    return redirect("patients:list")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _warnings_digest(plan: ImportPlan) -> str:
    return hashlib.sha256("\n".join(str(w) for w in plan.warnings).encode()).hexdigest()


def _preview(request: HttpRequest, plan: ImportPlan, name: str, digest: str) -> HttpResponse:
    ctx: dict[str, Any] = {
        "name": name,
        "plan": plan,
        "digest": digest,
        "new_rows": plan.new[:PREVIEW_ROWS],
        "more_new": max(len(plan.new) - PREVIEW_ROWS, 0),
        "bad_lines": len(plan.error_lines()),
    }
    return render(request, "imports/preview.html", ctx, status=200 if plan.ok else 400)


# --- exports ---------------------------------------------------------------------------


class _Echo:
    """csv.writer target that hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(csv_export.HEADER)
    for row in rows:
        yield writer.writerow(row)


def _csv_response(rows: Iterator[list[str]], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    # Generic names only: a file name with an MRN would leak it into downloads folders.
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_safe
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def export_patient(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    patient = access.patient(request.user, pk)
    series = assessment.series_for(patient)
    audit.record(request, AccessAction.EXPORT, patient=patient, target="CSV of the patient's draws")
    name = f"ctc-draws-{patient.pk}-{timezone.localdate():%Y-%m-%d}.csv"
    return _csv_response(csv_export.series_rows(series), name)


class ExportAllForm(forms.Form):
    """Every patient's draws leave the app in one file: say why, and confirm."""

    reason = forms.CharField(
        max_length=200,
        label="Why is this export needed?",
        help_text="Recorded in the access log with your name, e.g. “quarterly audit for "
        "the tumour board”. Do not write patient names or MRNs here.",
        error_messages={"required": "Say why the export is needed."},
    )
    confirm = forms.BooleanField(
        label="I understand this file holds the CTC draws of every patient I can see, and "
        "will keep it as patient data",
        error_messages={"required": "Tick to confirm before exporting."},
    )


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def export_all(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Ask for a reason and a confirmation, then stream every visible patient's draws."""
    form = ExportAllForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        today = timezone.localdate()
        reason = " ".join(form.cleaned_data["reason"].split())
        ids = _patients_with_draws(request.user)
        audit.record_read(
            request,
            AccessAction.EXPORT,
            patient_ids=ids,
            what=f"CSV of all patients' draws; reason: {reason}",
        )
        return _csv_response(_all_series_rows(request.user, ids), f"ctc-draws-{today:%Y-%m-%d}.csv")
    focus_first_error(form)
    status = 400 if request.method == "POST" else 200
    ctx = {"form": form, "patients": access.patients(request.user).count()}
    return render(request, "imports/export_all.html", ctx, status=status)


def _patients_with_draws(user: Any) -> list[int]:
    """The patients `user` may see who have a draw on record: those the full export holds,
    in the file's order (by MRN)."""
    with_draws = access.draws(user).filter(patient=OuterRef("pk"))
    visible = access.patients(user).filter(Exists(with_draws)).order_by("mrn")
    return list(visible.values_list("pk", flat=True))


def _all_series_rows(user: Any, ids: list[int]) -> Iterator[list[str]]:
    """The draws of patients `ids` (from `_patients_with_draws`), in that order.

    Loaded a few hundred patients at a time, in a fixed number of queries per batch.
    """
    for start in range(0, len(ids), EXPORT_PATIENTS_PER_QUERY):
        batch = access.patients(user).filter(pk__in=ids[start : start + EXPORT_PATIENTS_PER_QUERY])
        series = assessment.series_for_many(batch.order_by("mrn"))
        yield from csv_export.all_rows(
            series[p] for p in ids[start : start + EXPORT_PATIENTS_PER_QUERY]
        )
