"""Request types for the views' signatures: what a view may assume of its request.

Types only, for the type checker: nothing here runs per request, and Django
still passes its own HttpRequest. The pages and the API both use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind `login_required`: its user is signed in.

    `request.user` is then never AnonymousUser, so a view can hand it to code
    that needs the User (as healthchecks types its views).
    """

    user: User
