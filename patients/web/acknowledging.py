"""Acknowledging from a list or the patient page: one way for a cycle and a result.

The form posts a note and the page it came from (`next`); the service decides
whether there is anything to acknowledge. Back on that page, the app's message
region at the top says what was done (the page opens at its top: no anchor to
jump past the message) and the row acknowledged is highlighted (`just_done`).
A refused acknowledgement (no note, a note too long, nothing to acknowledge, the
same person again within minutes) is shown like every other form's errors: the
form again with the note kept, and the error summary naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from ctctrack.forms import focus_first_error
from patients import audit
from patients.models import AccessAction, Patient
from patients.web.forms import AcknowledgeForm, apply_service_errors, error_summary

# The session's note of the row just acknowledged ("cycle-12", "result-34"): the next
# list page shown highlights it once.
JUST_DONE_KEY = "just_acknowledged"


def acknowledge(
    request: HttpRequest,
    act: Callable[[str], object],
    *,
    patient: Patient,
    row: str,
    done: str,
    fallback: str,
) -> HttpResponse:
    """Run `act(note)` (a service's acknowledgement) from the posted form and go back.

    `row`: the acknowledged row's id on the lists; `done`: what was acknowledged, in
    words, for the success message ("cycle 3 of FOLFOX for Ahmed, Ali"). Refused, the
    form comes back (400) with its error summary, posting here again.
    """
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        try:
            act(form.cleaned_data["note"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
    target = back_to(request, fallback=fallback)
    if not form.is_valid():
        return _refused(request, form, patient=patient, done=done, back=target)
    messages.success(request, f"Acknowledged {done}.")
    request.session[JUST_DONE_KEY] = {"path": urlsplit(target).path, "row": row}
    # Not redirect(): it would try a `next` such as "x" as a view name (NoReverseMatch, a 500).
    return HttpResponseRedirect(target)


def _refused(
    request: HttpRequest, form: AcknowledgeForm, *, patient: Patient, done: str, back: str
) -> HttpResponse:
    """The acknowledge form again, saying what was wrong, with the note as typed."""
    data = form.data.copy()
    data["next"] = back  # the safe page to go back to, kept for the next try
    form.data = data
    focus_first_error(form)
    audit.record(request, AccessAction.VIEW, patient=patient, target=f"form {request.path}")
    ctx = {
        "form": form,
        "title": f"Acknowledge {done}",
        "patient": patient,
        "error_summary": error_summary(form),
        "submit_label": "Acknowledge",
        "cancel_url": back,
    }
    return render(request, "patients/form.html", ctx, status=400)


def just_done(request: HttpRequest) -> str:
    """The row acknowledged just before this page, once ("" when none, or when the
    acknowledgement went back to another page)."""
    done = request.session.pop(JUST_DONE_KEY, None)
    if isinstance(done, dict) and done.get("path") == request.path:
        return str(done.get("row", ""))
    return ""


def back_to(request: HttpRequest, *, fallback: str) -> str:
    """The safe `next` the form came from, or the fallback.

    Without its fragment: the page opens at its top, where the message is.
    """
    target = request.POST.get("next", "").split("#", 1)[0]
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target else fallback
