"""Entering and correcting the record: patients, therapy lines, cycles, draws, imaging.

Each view validates a form and hands the write to `patients.services`; bad input
or an edit conflict comes back on the form, with nothing saved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
)

from ctctrack.forms import focus_first_error
from patients import access, audit, services
from patients.messages import DRAW_IN_ERROR
from patients.models import (
    AccessAction,
    CycleStatus,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.web.forms import (
    CycleForm,
    DrawForm,
    EnteredInErrorForm,
    ImagingForm,
    PatientForm,
    TherapyLineForm,
    apply_service_errors,
)

GET_POST = require_http_methods(["GET", "HEAD", "POST"])


@GET_POST
@login_required
@permission_required("patients.add_patient", raise_exception=True)
def patient_create(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if k not in ("version", "reason")}
        patient = _attempt(form, lambda: services.register_patient(by=request.user, **fields))
        if patient:
            messages.success(request, f"Registered {patient.name}.")
            return redirect("patients:detail", pk=patient.pk)
    return _form_page(request, form, title="New patient", status=_status(request))


@GET_POST
@login_required
@permission_required("patients.change_patient", raise_exception=True)
def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.patient(request.user, pk)
    form = PatientForm(request.POST or None, instance=patient, initial={"version": patient.version})
    if request.method == "POST" and form.is_valid():
        changes, version, reason = services.split_edit(form.cleaned_data, changed=form.changed_data)
        saved = _attempt(
            form,
            lambda: services.update_patient(
                patient=patient, by=request.user, changes=changes, version=version, reason=reason
            ),
        )
        if saved:
            messages.success(request, "Patient details saved.")
            return redirect("patients:detail", pk=patient.pk)
    title = f"Edit {patient.name}"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


# --- therapy lines and cycles --------------------------------------------------------


@GET_POST
@login_required
@permission_required("patients.add_therapyline", raise_exception=True)
def line_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.patient(request.user, pk)
    form = TherapyLineForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        line = _attempt(
            form,
            lambda: services.add_therapy_line(
                patient=patient, by=request.user, **form.cleaned_data
            ),
        )
        if line:
            messages.success(request, f"Line {line.line_number} ({line.regimen}) added.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    return _form_page(
        request, form, title="New therapy line", patient=patient, status=_status(request)
    )


@GET_POST
@login_required
@permission_required("patients.change_therapyline", raise_exception=True)
def line_edit(request: HttpRequest, pk: int) -> HttpResponse:
    line = access.line(request.user, pk)
    patient = line.patient
    form = TherapyLineForm(request.POST or None, instance=line)
    if request.method == "POST" and form.is_valid():
        saved = _attempt(
            form,
            lambda: services.update_therapy_line(
                line=line, by=request.user, changes=_without_none_line_number(form)
            ),
        )
        if saved:
            messages.success(request, f"Line {saved.line_number} saved.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    title = f"Edit line {line.line_number}"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _without_none_line_number(form: TherapyLineForm) -> dict[str, Any]:
    changes = dict(form.cleaned_data)
    if changes.get("line_number") is None:
        changes.pop("line_number")
    return changes


@GET_POST
@login_required
@permission_required("patients.add_treatmentcycle", raise_exception=True)
def cycle_create(request: HttpRequest, pk: int) -> HttpResponse:
    line = access.line(request.user, pk)
    patient = line.patient
    form = CycleForm(request.POST or None, initial=_next_cycle_initial(line))
    form.fields.pop("move_later_cycles")
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if k != "version"}
        cycle = _attempt(form, lambda: services.plan_cycle(line=line, by=request.user, **fields))
        if cycle:
            messages.success(request, f"Cycle {cycle.number} planned for {cycle.scheduled_date}.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    title = f"New cycle: line {line.line_number} ({line.regimen})"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _next_cycle_initial(line: TherapyLine) -> dict[str, Any]:
    last = line.cycles.order_by("-number").first()
    if last is None:
        return {"number": 1, "scheduled_date": line.start_date}
    step = timedelta(days=line.cycle_length_days)
    return {"number": last.number + 1, "scheduled_date": last.scheduled_date + step}


@GET_POST
@login_required
@permission_required("patients.change_treatmentcycle", raise_exception=True)
def cycle_edit(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = access.cycle(request.user, pk)
    patient = cycle.therapy_line.patient
    form = CycleForm(request.POST or None, instance=cycle, initial={"version": cycle.version})
    if request.method == "POST" and form.is_valid():
        saved = _attempt(form, lambda: _save_cycle(request, cycle, form))
        if saved:
            messages.success(request, f"Cycle {cycle.number} saved.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    title = f"Edit cycle {cycle.number}: line {cycle.therapy_line.line_number}"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _save_cycle(request: HttpRequest, cycle: TreatmentCycle, form: CycleForm) -> Any:
    data = dict(form.cleaned_data)
    move_later = data.pop("move_later_cycles")
    changes, version, reason = services.split_edit(data, changed=form.changed_data)
    new_date = changes.get("scheduled_date", cycle.scheduled_date)
    delayed = changes.get("status", cycle.status) == CycleStatus.DELAYED
    if not (move_later and delayed and new_date > cycle.scheduled_date):
        return services.update_cycle(
            cycle=cycle, by=request.user, changes=changes, version=version, reason=reason
        )
    # One savepoint for both steps: if the second is refused, the delay is undone too
    # (the view catches the error and answers 400, so the request itself commits).
    with transaction.atomic():
        moved = services.delay_cycle_and_following(
            cycle=cycle,
            by=request.user,
            new_date=new_date,
            reason=changes.get("status_reason", cycle.status_reason),
            version=version,
        )
        rest = {
            k: v
            for k, v in changes.items()
            if k not in ("status", "scheduled_date", "status_reason")
        }
        if rest:  # e.g. a corrected number
            services.update_cycle(
                cycle=moved[0],
                by=request.user,
                changes=rest,
                version=moved[0].version,  # as the delay just saved it
                reason=reason,
            )
    return moved


# --- draws and imaging -----------------------------------------------------------------


@GET_POST
@login_required
@permission_required("patients.add_ctcdraw", raise_exception=True)
def draw_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.patient(request.user, pk)
    form = DrawForm(request.POST or None)  # the volume: the model default, STANDARD_VOLUME_ML
    form.fields.pop("reason")
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if k != "version"}
        saved = _attempt(
            form,
            lambda: services.record_draw_and_assess(patient=patient, by=request.user, **fields),
        )
        if saved:
            _announce_flags(request, saved)
            return redirect(
                reverse("patients:detail", args=[patient.pk]) + f"#draw-{saved.draw.pk}"
            )
    return _form_page(request, form, title="New CTC draw", patient=patient, status=_status(request))


def _announce_flags(request: HttpRequest, saved: services.DrawSaved) -> None:
    """After saving a draw, say what the rules made of it when it was saved."""
    flags = saved.flags
    if not flags:
        messages.success(request, "Draw saved. No flags.")
        return
    messages.warning(
        request,
        "Draw saved. Flags: " + " · ".join(f"{f.message}" for f in flags),
    )


@GET_POST
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def draw_edit(request: HttpRequest, pk: int) -> HttpResponse:
    draw = access.draw(request.user, pk)
    patient = draw.patient
    if draw.entered_in_error:
        messages.error(request, DRAW_IN_ERROR)
        return redirect("patients:detail", pk=patient.pk)
    form = DrawForm(
        request.POST or None, instance=draw, initial={"version": draw.version}, editing=True
    )
    if request.method == "POST" and form.is_valid():
        changes, version, reason = services.split_edit(form.cleaned_data, changed=form.changed_data)
        saved = _attempt(
            form,
            lambda: services.update_draw_and_assess(
                draw=draw, by=request.user, changes=changes, version=version, reason=reason
            ),
        )
        if saved:
            _announce_flags(request, saved)
            return redirect(reverse("patients:detail", args=[patient.pk]) + f"#draw-{draw.pk}")
    error_form = EnteredInErrorForm(initial={"version": draw.version})
    return _form_page(
        request,
        form,
        title="Edit CTC draw",
        patient=patient,
        status=_status(request),
        extra={"draw": draw, "error_form": error_form},
    )


@require_POST
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def draw_entered_in_error(request: HttpRequest, pk: int) -> HttpResponse:
    draw = access.draw(request.user, pk)
    patient = draw.patient
    form = EnteredInErrorForm(request.POST)
    if form.is_valid():
        _attempt(
            form,
            lambda: services.mark_draw_entered_in_error(
                draw=draw,
                by=request.user,
                reason=form.cleaned_data["reason"],
                version=form.cleaned_data.get("version"),
            ),
        )
    if form.is_valid():
        messages.success(request, "The draw is marked as entered in error. It stays on record.")
        return redirect(reverse("patients:detail", args=[patient.pk]) + f"#draw-{draw.pk}")
    # The correction form beside it starts from the version this page read, as on draw_edit.
    correction = DrawForm(instance=draw, initial={"version": draw.version}, editing=True)
    ctx = {"form": correction, "error_form": form, "draw": draw}
    return _form_page(
        request, ctx["form"], title="Edit CTC draw", patient=patient, status=400, extra=ctx
    )


@GET_POST
@login_required
@permission_required("patients.add_imagingassessment", raise_exception=True)
def imaging_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.patient(request.user, pk)
    form = ImagingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        imaging = _attempt(
            form,
            lambda: services.record_imaging(patient=patient, by=request.user, **form.cleaned_data),
        )
        if imaging:
            messages.success(request, f"Imaging of {imaging.performed_on} recorded.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#imaging")
    return _form_page(request, form, title="New imaging", patient=patient, status=_status(request))


# --- shared form handling ---------------------------------------------------------------


def _attempt(form: Any, save: Any) -> Any:
    """Run a service; on bad input, a conflict or no version, put the messages on the form."""
    try:
        return save()
    except ValidationError as exc:
        apply_service_errors(form, exc)
    except services.VersionRequired as exc:
        form.add_error(None, str(exc))
    except services.ConflictError as exc:
        form.add_error(None, str(exc))
        form.conflict = exc
        _rebase(form, exc.current)
    return None


def _rebase(form: Any, version: int) -> None:
    """Keep what the editor typed, but base it on the version they have now been
    shown, so a second Save applies it knowingly (and a third editor's change in
    between is caught again)."""
    if "version" in form.fields:
        data = form.data.copy()
        data[form.add_prefix("version")] = str(version)
        form.data = data


def _status(request: HttpRequest) -> int:
    """A form shown again after a POST is showing errors: answer 400."""
    return 400 if request.method == "POST" else 200


def _form_page(
    request: HttpRequest,
    form: Any,
    *,
    title: str,
    patient: Patient | None = None,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    focus_first_error(form)
    ctx = {"form": form, "title": title, "patient": patient, **(extra or {})}
    if patient is not None:  # a form about a patient shows their record
        audit.record(request, AccessAction.VIEW, patient=patient, target=f"form {request.path}")
    return render(request, "patients/form.html", ctx, status=status)
