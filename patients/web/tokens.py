"""The owner's API tokens: `/account/api-tokens/`: see them, issue one, revoke one.

A key is shown once, in the answer to the POST that issued it (pages are never
cached: ctctrack.middleware.NoStoreMiddleware), and never again: only its hash is
kept (patients/accounts/api_tokens.py). The session is already past both factors.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from patients.accounts import api_tokens


class TokenForm(forms.Form):
    name = forms.CharField(
        label="What it is for",
        max_length=100,
        help_text="For example “lab interface” or “ward dashboard”: to tell your tokens apart.",
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_tokens_page(request: HttpRequest) -> HttpResponse:
    """The user's tokens; POST `name` issues one, POST `revoke` (a token's id) revokes one."""
    if request.method == "POST" and "revoke" in request.POST:
        return _revoke(request, request.POST["revoke"])
    form = TokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        token, key = api_tokens.issue(request.user, name=form.cleaned_data["name"], request=request)
        issued = {"token": token, "key": key}
        form = TokenForm()
    now = timezone.now()
    tokens = [
        {"token": token, "state": api_tokens.state(token, now=now)}
        for token in api_tokens.tokens_of(request.user)[:50]
    ]
    context = {
        "form": form,
        "issued": issued,
        "tokens": tokens,
        "active": api_tokens.TokenState.ACTIVE,
        "max_age_hours": settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS // 3600,
    }
    status = 400 if request.method == "POST" and issued is None else 200
    return render(request, "accounts/api_tokens.html", context, status=status)


def _revoke(request: HttpRequest, pk: str) -> HttpResponse:
    """Revoke one of the user's own tokens (another's, or no such token: 404)."""
    # Only among the user's own tokens: another's id is answered as an unknown one.
    token = api_tokens.tokens_of(request.user).filter(pk=int(pk)).first() if pk.isdigit() else None
    if token is None:
        raise Http404
    if api_tokens.revoke(token, by=request.user, request=request):
        messages.success(request, f"Revoked the API token {token.prefix}… ({token.name}).")
    else:
        messages.info(request, f"The API token {token.prefix}… was already revoked.")
    return redirect("patients:api-tokens")
