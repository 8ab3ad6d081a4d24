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

# The session's note of the rows just acknowledged or saved ("cycle-12", "result-34",
# "draw-34"), and of the page they are on: that page, shown next, highlights them once.
JUST_DONE_KEY = "just_acknowledged"


def acknowledge(
    request: HttpRequest,
    act: Callable[[str], object],
    *,
    patient: Patient,
    row: str,
    done: str,
    fallback: str,
    also: tuple[str, ...] = (),
) -> HttpResponse:
    """Run `act(note)` (a service's acknowledgement) from the posted form and go back.

    `row`: the acknowledged row's id on the lists (`also`: its ids on the patient page,
    where they differ); `done`: what was acknowledged, in
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
    mark_done(request, urlsplit(target).path, row, *also)
    # Not redirect(): it would try a `next` such as "x" as a view name (NoReverseMatch, a 500).
    return HttpResponseRedirect(target)


def _refused(
    request: HttpRequest, form: AcknowledgeForm, *, patient: Patient, done: str, back: str
) -> HttpResponse:
    """The acknowledge form again, saying what was wrong, with the note as typed."""
    data = request.POST.copy()
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


def mark_done(request: HttpRequest, path: str, *rows: str) -> None:
    """Note the rows (their ids on the page at `path`) just acknowledged or saved: the
    next page shown highlights them, if it is that page."""
    request.session[JUST_DONE_KEY] = {"path": path, "rows": list(rows)}


def just_done(request: HttpRequest) -> list[str]:
    """The ids of the rows acknowledged or saved just before this page, once (none
    when the acknowledgement or the save went back to another page)."""
    done = request.session.pop(JUST_DONE_KEY, None)
    if isinstance(done, dict) and done.get("path") == request.path:
        return [str(row) for row in done.get("rows", [])]
    return []


def just_done_by_kind(request: HttpRequest) -> dict[str, set[int]]:
    """just_done as the primary keys of each kind of row: {"draw": {34}, "cycle": {12}}."""
    found: dict[str, set[int]] = {}
    for row in just_done(request):
        kind, _, pk = row.rpartition("-")
        if kind and pk.isdigit():
            found.setdefault(kind, set()).add(int(pk))
    return found


def back_to(request: HttpRequest, *, fallback: str) -> str:
    """The safe `next` the form came from, or the fallback.

    Without its fragment: the page opens at its top, where the message is.
    """
    target = request.POST.get("next", "").split("#", 1)[0]
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target else fallback
