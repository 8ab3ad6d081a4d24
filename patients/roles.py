"""Roles are Django groups. This dict is the one place that says what each may do.

Oncologists create and change clinical data; nurses read everything and acknowledge
the flags they have seen. Administrators are staff users and
work through Django admin.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ONCOLOGIST = "oncologist"
NURSE = "nurse"

_CLINICAL_MODELS = ["patient", "therapyline", "treatmentcycle", "ctcdraw", "imagingassessment"]

# Both roles acknowledge the flags they have seen; only oncologists change the record.
_ACKNOWLEDGE = ["view_acknowledgement", "add_acknowledgement"]

ROLES: dict[str, list[str]] = {
    ONCOLOGIST: [
        f"{action}_{model}" for model in _CLINICAL_MODELS for action in ("view", "add", "change")
    ]
    + _ACKNOWLEDGE,
    NURSE: [f"view_{model}" for model in _CLINICAL_MODELS] + _ACKNOWLEDGE,
}


def sync_roles() -> None:
    """Create or update one group per role. Safe to run any number of times."""
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(
            content_type__app_label="patients", codename__in=codenames
        )
        group.permissions.set(perms)
