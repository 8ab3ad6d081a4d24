"""Entering and correcting the record: patients, therapy lines, cycles, draws, imaging.

Each view validates a form and hands the write to `patients.services`; bad input
or an edit conflict comes back on the form, with nothing saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
)

from ctctrack.forms import focus_first_error
from patients import access, assessment, audit, services
from patients.messages import DRAW_IN_ERROR
from patients.models import (
    AccessAction,
    CTCDraw,
    CycleStatus,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.web import acknowledging, dates
from patients.web.forms import (
    CycleForm,
    DrawForm,
    EnteredInErrorForm,
    ImagingForm,
    PatientForm,
    PlanCyclesForm,
    TherapyLineForm,
    apply_service_errors,
    error_summary,
)
from patients.web.presenters import draw_row, draw_rows

GET_POST = require_http_methods(["GET", "HEAD", "POST"])


@GET_POST
@login_required
@permission_required("patients.add_patient", raise_exception=True)
def patient_create(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None, user=request.user)
    del form.fields["reason"], form.fields["version"]  # nothing to explain on a new record
    if _valid(form, lambda fields: services.patient_entry_errors(fields)):
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
    form = PatientForm(
        request.POST or None,
        instance=patient,
        initial={"version": patient.version},
        user=request.user,
    )
    if _valid(form, lambda fields: services.patient_entry_errors(fields, patient=patient)):
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
    if _valid(form, lambda fields: services.line_entry_errors(fields, patient=patient)):
        line = _attempt(
            form,
            lambda: services.add_therapy_line(
                patient=patient, by=request.user, **form.cleaned_data
            ),
        )
        if line:
            messages.success(request, f"Line {line.line_number} ({line.regimen}) added.")
            return _to_patient(request, patient, f"line-{line.pk}")
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
    if _valid(form, lambda f: services.line_entry_errors(f, patient=patient, line=line)):
        saved = _attempt(
            form,
            lambda: services.update_therapy_line(
                line=line, by=request.user, changes=_without_none_line_number(form)
            ),
        )
        if saved:
            messages.success(request, f"Line {saved.line_number} saved.")
            return _to_patient(request, patient, f"line-{line.pk}")
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
    if _valid(form, lambda fields: services.cycle_entry_errors(fields, line=line)):
        fields = {k: v for k, v in form.cleaned_data.items() if k != "version"}
        cycle = _attempt(form, lambda: services.plan_cycle(line=line, by=request.user, **fields))
        if cycle:
            day_1 = dates.day(cycle.scheduled_date)
            messages.success(request, f"Cycle {cycle.number} planned for {day_1}.")
            return _to_patient(request, patient, f"cycle-{cycle.pk}")
    title = f"New cycle: line {line.line_number} ({line.regimen})"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


@GET_POST
@login_required
@permission_required("patients.add_treatmentcycle", raise_exception=True)
def cycles_plan(request: HttpRequest, pk: int) -> HttpResponse:
    """Plan several cycles of a line at once: all of them, or none."""
    line = access.line(request.user, pk)
    patient = line.patient
    start = _next_cycle_initial(line)
    initial = {
        "first_number": start["number"],
        "first_date": start["scheduled_date"],
        "every_days": line.cycle_length_days,
        "count": 6,
    }
    form = PlanCyclesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        planned = _attempt(
            form, lambda: services.plan_cycles(line=line, by=request.user, **form.cleaned_data)
        )
        if planned:
            first, last = planned[0], planned[-1]
            messages.success(
                request,
                f"{len(planned)} cycles planned in line {line.line_number}: "
                f"C{first.number} on {dates.day(first.scheduled_date)} "
                f"to C{last.number} on {dates.day(last.scheduled_date)}.",
            )
            return _to_patient(request, patient, *(f"cycle-{c.pk}" for c in planned))
    title = f"Plan cycles: line {line.line_number} ({line.regimen})"
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
    form = CycleForm(
        request.POST or None, instance=cycle, initial={"version": cycle.version}, editing=True
    )
    line = cycle.therapy_line
    if _valid(form, lambda f: services.cycle_entry_errors(f, line=line, cycle=cycle)):
        saved = _attempt(form, lambda: _save_cycle(request, cycle, form))
        if saved:
            messages.success(request, f"Cycle {cycle.number} saved.")
            return _to_patient(request, patient, f"cycle-{cycle.pk}")
    title = f"Edit cycle {cycle.number}: line {line.line_number} ({line.regimen})"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _save_cycle(request: HttpRequest, cycle: TreatmentCycle, form: CycleForm) -> Any:
    data = dict(form.cleaned_data)
    move_later = data.pop("move_later_cycles")
    data.pop("delay_days")  # already turned into day 1 and the status by the form
    changes, version, reason = services.split_edit(data, changed=form.edited_fields())
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
        if rest:  # e.g. a given date
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
    del form.fields["reason"], form.fields["version"]
    if _valid(form, lambda fields: services.draw_entry_errors(fields, patient=patient)):
        fields = form.entry_fields()
        if not _same_day_confirmed(form, patient):
            pass
        elif saved := _attempt(
            form,
            lambda: services.record_draw_and_assess(patient=patient, by=request.user, **fields),
        ):
            _announce_flags(request, saved)
            return _to_patient(request, patient, f"draw-{saved.draw.pk}")
    return _form_page(
        request,
        form,
        title="New CTC draw",
        patient=patient,
        status=_status(request),
        extra={"draw_facts": _draw_facts(patient)},
    )


def _same_day_confirmed(form: DrawForm, patient: Patient) -> bool:
    """A second draw on one day is usually one tube entered twice: say so, and ask."""
    if form.same_day_confirmed():
        return True
    others = services.same_day_draws(patient, form.cleaned_data["drawn_at"])
    if not others:
        return True
    listed = "; ".join(f"{dates.moment(d.drawn_at)}, {draw_summary(d)}" for d in others)
    day = dates.day(timezone.localdate(form.cleaned_data["drawn_at"]))
    form.ask_same_day_confirmation(
        f"{patient.name} already has a draw on {day} ({listed}). Nothing was saved: if this "
        "is another draw, tick the box below and save again."
    )
    return False


def _draw_facts(patient: Patient) -> dict[str, Any]:
    """What the person entering a draw checks it against: the cut-off and the last count."""
    series = assessment.series_for(patient)
    last = next((r for r in reversed(draw_rows(series)) if not r.draw.entered_in_error), None)
    return {"cutoff": series.cutoff, "last": last}


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
    if draw.entered_in_error:
        messages.error(request, DRAW_IN_ERROR)
        return redirect("patients:detail", pk=draw.patient.pk)
    return _edit_with_reason(
        request,
        _draw_correction(draw),
        check=lambda f: services.draw_entry_errors(f, patient=draw.patient, draw=draw),
        save=lambda changes, version, reason: services.update_draw_and_assess(
            draw=draw, by=request.user, changes=changes, version=version, reason=reason
        ),
        done=lambda saved: _announce_flags(request, saved),
    )


@require_POST
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def draw_entered_in_error(request: HttpRequest, pk: int) -> HttpResponse:
    draw = access.draw(request.user, pk)
    return _mark_entered_in_error(
        request,
        _draw_correction(draw),
        mark=lambda reason, version: services.mark_draw_entered_in_error(
            draw=draw, by=request.user, reason=reason, version=version
        ),
        done="The draw is marked as entered in error. It stays on record.",
    )


@GET_POST
@login_required
@permission_required("patients.change_imagingassessment", raise_exception=True)
def imaging_edit(request: HttpRequest, pk: int) -> HttpResponse:
    imaging = access.imaging_record(request.user, pk)
    patient = imaging.patient
    if imaging.entered_in_error:
        messages.error(request, services.IMAGING_IN_ERROR)
        return _to_patient(request, patient, f"imaging-{pk}")

    def done(saved: Any) -> None:
        messages.success(request, f"Imaging of {dates.day(saved.performed_on)} corrected.")

    return _edit_with_reason(
        request,
        _imaging_correction(imaging),
        check=lambda f: services.imaging_entry_errors(f, patient=patient, imaging=imaging),
        save=lambda changes, version, reason: services.update_imaging(
            imaging=imaging, by=request.user, changes=changes, version=version, reason=reason
        ),
        done=done,
    )


@require_POST
@login_required
@permission_required("patients.change_imagingassessment", raise_exception=True)
def imaging_entered_in_error(request: HttpRequest, pk: int) -> HttpResponse:
    imaging = access.imaging_record(request.user, pk)
    return _mark_entered_in_error(
        request,
        _imaging_correction(imaging),
        mark=lambda reason, version: services.mark_imaging_entered_in_error(
            imaging=imaging, by=request.user, reason=reason, version=version
        ),
        done="The imaging is marked as entered in error. It stays on record.",
    )


# --- correcting with a reason, or marking entered in error: draws and imaging alike -------


@dataclass(frozen=True)
class _Correction:
    """What differs between correcting a draw and correcting imaging: the record, its
    form, the page's title, the words for it, its row on the patient page and where
    its "entered in error" form posts."""

    record: CTCDraw | ImagingAssessment
    patient: Patient
    form_class: type[DrawForm] | type[ImagingForm]
    title: str
    what: str  # "draw" or "imaging", in the "entered in error" section
    row: str
    error_action: str

    def correction_form(self, data: Any = None) -> DrawForm | ImagingForm:
        version = {"version": self.record.version}
        return self.form_class(data, instance=self.record, initial=version, editing=True)

    def error_form(self, data: Any = None) -> EnteredInErrorForm:
        if data is None:
            return EnteredInErrorForm(initial={"version": self.record.version}, what=self.what)
        return EnteredInErrorForm(data, what=self.what)


def _draw_correction(draw: CTCDraw) -> _Correction:
    return _Correction(
        record=draw,
        patient=draw.patient,
        form_class=DrawForm,
        title="Edit CTC draw",
        what="draw",
        row=f"draw-{draw.pk}",
        error_action=reverse("patients:draw-error", args=[draw.pk]),
    )


def _imaging_correction(imaging: ImagingAssessment) -> _Correction:
    return _Correction(
        record=imaging,
        patient=imaging.patient,
        form_class=ImagingForm,
        title=f"Correct imaging of {dates.day(imaging.performed_on)}",
        what="imaging",
        row=f"imaging-{imaging.pk}",
        error_action=reverse("patients:imaging-error", args=[imaging.pk]),
    )


def _edit_with_reason(
    request: HttpRequest,
    c: _Correction,
    *,
    check: Callable[[dict[str, Any]], Mapping[str, list[str]]],
    save: Callable[[dict[str, Any], Any, str], Any],
    done: Callable[[Any], None],
) -> HttpResponse:
    """The correction page: on a valid POST, `save(changes, version, reason)` (a service),
    `done(saved)` says so, and back to the patient's page, the row highlighted."""
    form = c.correction_form(request.POST or None)
    if _valid(form, check):
        changes, version, reason = services.split_edit(form.cleaned_data, changed=form.changed_data)
        saved = _attempt(form, lambda: save(changes, version, reason))
        if saved:
            done(saved)
            return _to_patient(request, c.patient, c.row)
    extra = {"error_form": c.error_form(), "error_action": c.error_action, "error_what": c.what}
    return _form_page(
        request, form, title=c.title, patient=c.patient, status=_status(request), extra=extra
    )


def _mark_entered_in_error(
    request: HttpRequest,
    c: _Correction,
    *,
    mark: Callable[[str, Any], Any],
    done: str,
) -> HttpResponse:
    """The "entered in error" form's POST: `mark(reason, version)` (a service), or the
    correction page again with this form's errors."""
    form = c.error_form(request.POST)
    if form.is_valid():
        _attempt(form, lambda: mark(form.cleaned_data["reason"], form.cleaned_data.get("version")))
    if form.is_valid():
        messages.success(request, done)
        return _to_patient(request, c.patient, c.row)
    # The correction form beside it starts from the version this page read.
    return _error_form_page(
        request, c.correction_form(), form, title=c.title, patient=c.patient, what=c.what
    )


def _error_form_page(
    request: HttpRequest,
    correction: Any,
    form: EnteredInErrorForm,
    *,
    title: str,
    patient: Patient,
    what: str,
) -> HttpResponse:
    """The correction page again, its "entered in error" form showing what was wrong."""
    focus_first_error(form)
    extra = {"error_form": form, "error_action": request.path, "error_what": what}
    return _form_page(request, correction, title=title, patient=patient, status=400, extra=extra)


@GET_POST
@login_required
@permission_required("patients.add_imagingassessment", raise_exception=True)
def imaging_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.patient(request.user, pk)
    form = ImagingForm(request.POST or None)
    if _valid(form, lambda fields: services.imaging_entry_errors(fields, patient=patient)):
        imaging = _attempt(
            form,
            lambda: services.record_imaging(patient=patient, by=request.user, **form.cleaned_data),
        )
        if imaging:
            messages.success(request, f"Imaging of {dates.day(imaging.performed_on)} recorded.")
            return _to_patient(request, patient, f"imaging-{imaging.pk}")
    return _form_page(request, form, title="New imaging", patient=patient, status=_status(request))


# --- shared form handling ---------------------------------------------------------------


def _to_patient(request: HttpRequest, patient: Patient, *rows: str) -> HttpResponse:
    """Back to the patient's page after a save: at its top, where the message is (no
    anchor to scroll past it), with the rows saved (their ids there) highlighted."""
    page = reverse("patients:detail", args=[patient.pk])
    acknowledging.mark_done(request, page, *rows)
    return redirect(page)


def _valid(form: Any, check: Callable[[dict[str, Any]], Mapping[str, list[str]]]) -> bool:
    """Was a valid form posted? When some fields could not be read, `check` (the use case's
    own checks) still looks at the others, so every problem is reported at once."""
    if form.is_valid():
        return True
    if form.is_bound and any(name in form.errors for name in form.fields):
        entry = set(form._meta.fields or ())
        readable = {k: v for k, v in form.cleaned_data.items() if k in entry}
        for name, problems in check(readable).items():
            if name in form.fields and name not in form.errors:
                for problem in problems:
                    form.add_error(name, problem)
    return False


def draw_summary(draw: CTCDraw) -> str:
    """A draw in a few words: "4 in 7.5 mL", or its status when it has no count."""
    return draw_row(draw, None).count_text or draw.get_status_display().lower()


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
    ctx = {
        "form": form,
        "title": title,
        "patient": patient,
        "error_summary": error_summary(form),
        **(extra or {}),
    }
    if "error_form" in ctx:
        ctx["error_form_summary"] = error_summary(ctx["error_form"])
    if patient is not None:  # a form about a patient shows their record
        audit.record(request, AccessAction.VIEW, patient=patient, target=f"form {request.path}")
    return render(request, "patients/form.html", ctx, status=status)
