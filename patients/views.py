"""Server-rendered pages. Thin function views: fetch, ask rules, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from patients.models import CTCDraw, Patient
from patients.roles import ROLES


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """A start page with the user's role and the ways in (API, admin)."""
    roles = sorted(request.user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    can_read = request.user.has_perm("patients.view_patient")
    ctx = {
        "roles": roles,
        "can_read": can_read,
        "patient_count": Patient.objects.count() if can_read else None,
        "draw_count": CTCDraw.objects.count() if can_read else None,
    }
    return render(request, "home.html", ctx)
