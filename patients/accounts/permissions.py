"""Who may do what through the API, HL7 and FHIR: the model permissions that roles grant.

Here, below the API and the interfaces, so that every HTTP endpoint (API v1, the
HL7 endpoint, FHIR) declares its permissions the same way.

One mechanism: every view declares, in `required_perms`, the permissions each
HTTP method needs, and `RolePermission` (the project's default permission
class) checks them. Roles (groups) grant the permissions, see
`patients.roles`; staff administrators are superusers and hold all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

if TYPE_CHECKING:  # DRF imports this module while `rest_framework.views` loads
    from rest_framework.views import APIView

# HTTP method -> the permissions ("app_label.codename") a request with it needs.
Perms = Mapping[str, tuple[str, ...]]

# DRF's model permissions, with reading guarded too: the action each method needs.
_ACTIONS = {
    "GET": "view",
    "OPTIONS": "view",
    "HEAD": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def _perm(model: type[Model], action: str) -> str:
    """The permission to `action` ("view", "add", "change", "delete") a `model`."""
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def model_perms(model: type[Model], **actions: tuple[str, ...]) -> Perms:
    """Reading `model` needs `view_`, POST `add_`, PUT and PATCH `change_`, DELETE `delete_`.

    A method given by name needs the actions listed for it instead, e.g.
    `POST=("add", "change")`.
    """
    needed = {method: (action,) for method, action in _ACTIONS.items()} | actions
    return {method: tuple(_perm(model, a) for a in acts) for method, acts in needed.items()}


def every_method(*perms: str) -> Perms:
    """The same permissions, whatever the method (the view refuses those it lacks: 405)."""
    return dict.fromkeys(_ACTIONS, perms)


class RolePermission(BasePermission):
    """Anonymous users get 401; others need every permission the view requires of the method.

    A view that declares no `required_perms` but names a `queryset` needs
    `model_perms` of its model, as DRF's `DjangoModelPermissions` would.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = required_perms(view)
        method = request.method or ""  # None only on an HttpRequest built by hand
        if method not in needed:
            raise MethodNotAllowed(method)
        return user.has_perms(needed[method])


def required_perms(view: Any) -> Perms:
    declared = getattr(view, "required_perms", None)
    if declared is not None:
        return declared
    queryset = getattr(view, "queryset", None)
    if queryset is None:
        # Refuse to guess: a view with nothing declared would otherwise be open or shut by chance.
        raise ImproperlyConfigured(f"{type(view).__name__} declares no `required_perms`.")
    return model_perms(queryset.model)
