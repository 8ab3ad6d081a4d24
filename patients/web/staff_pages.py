"""Staff pages about the clinic as a whole rather than one patient: the replicate variation."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from ctctrack.http import AuthenticatedHttpRequest
from patients import access, audit, replicates
from patients.assessment.replicates import replicate_estimate
from patients.models import AccessAction


@require_safe
@login_required
def replicate_variation(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The replicate cv estimated from the duplicate tubes of every patient the user may
    see, beside the setting it may inform. Staff only; it never changes the setting."""
    if not request.user.is_staff:
        raise PermissionDenied
    estimate = replicate_estimate(access.draws(request.user))
    setting = settings.CTC_EXTRA_POISSON_CV
    target = f"replicate variation: {estimate.pairs} duplicate pairs"
    audit.record(request, AccessAction.REPLICATE_VARIATION, target=target)
    ctx = {
        "estimate": estimate,
        "summary": replicates.describe(estimate, setting),
        "cv": replicates.fraction(estimate.cv) if estimate.cv is not None else "no estimate",
        "interval": replicates.interval_text(estimate),
        "setting": setting,
        "min_pairs": replicates.MIN_PAIRS,
        "resamples": replicates.RESAMPLES,
    }
    return render(request, "patients/replicate_variation.html", ctx)
