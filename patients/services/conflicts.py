"""Edit conflicts: an edit based on a version that is no longer current, and its wording."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from patients.audit.history import HistoryEntry, edits_since


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
    when = timezone.localtime(edit.at).strftime("%Y-%m-%d %H:%M")
    fields = "; ".join(f"{c.field}: {c.old} → {c.new}" for c in edit.changes) or "no field"
    reason = f' (reason: "{edit.reason}")' if edit.reason else ""
    return f"{edit.by or 'An interface'} changed {fields} at {when}{reason}."
