"""Edit conflicts: an edit based on a version that is no longer current, or on none.

Also the one way for the system's own follow-on edits to say they apply to
whatever version is current (`ANY_VERSION`), and the wording of both refusals.
"""

from __future__ import annotations

from enum import Enum

from django.db import models
from django.utils import timezone

from patients import wording
from patients.audit.history import HistoryEntry, edits_since
from patients.messages import VERSION_REQUIRED


class _AnyVersion(Enum):
    ANY = "the version the row has when it is locked"


# For edits no person based on a version they read: a lab interface's result, or the
# later cycles a delay moves along. A person's edit always names its version.
ANY_VERSION = _AnyVersion.ANY

# What an edit names: a version number, `ANY_VERSION`, or None (not given: refused).
Version = int | _AnyVersion | None


class VersionRequired(Exception):
    """The edit did not say which version it was based on.

    Without one, an edit could overwrite a change saved since the editor read
    the record, so it is refused rather than applied to whatever is current.
    """

    def __init__(self) -> None:
        super().__init__(VERSION_REQUIRED)


class ConflictError(Exception):
    """The edit was based on a version of the record that is no longer current.

    It carries the edits saved since that version (who, when, which fields, old
    and new values, why), so the second editor is told what changed rather than
    only that something did.
    """

    def __init__(self, instance: models.Model, based_on: int) -> None:
        self.instance = instance
        self.based_on = based_on
        self.current = instance.version  # type: ignore[attr-defined]
        self.edits = edits_since(instance, based_on)
        super().__init__(
            f"This {instance._meta.verbose_name} was changed by someone else "
            f"(you edited version {based_on}, it is now version {self.current}). "
            "Check what changed, then save again to apply your changes over it."
        )


def describe_edit(edit: HistoryEntry) -> str:
    """One edit as a plain sentence (the API's `summary` of an edit a conflict lists)."""
    when = wording.time_text(timezone.localtime(edit.at))
    fields = "; ".join(f"{c.field}: {c.old} → {c.new}" for c in edit.changes) or "no field"
    reason = f' (reason: "{edit.reason}")' if edit.reason else ""
    return f"{edit.by or 'An interface'} changed {fields} at {when}{reason}."
