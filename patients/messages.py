"""Messages a user reads that more than one layer gives: written once, here.

A form or a serializer refuses input before a service sees it; the service
refuses the same input when another caller sends it. Both must say the same
thing, so they take the words from here. No imports: any module may use it.
"""

from __future__ import annotations

NOTE_REQUIRED = "Write a note saying what you checked or did."
NOTHING_TO_ACKNOWLEDGE = "Nothing to acknowledge: this result has no high or review flag."
NOTHING_TO_ACKNOWLEDGE_CYCLE = "Nothing to acknowledge: this cycle has no high or review flag."
# A second acknowledgement of one item by one person within this many minutes is refused:
# a double submission (a second tap, a resent form), not a second look.
ACKNOWLEDGED_AGAIN_MINUTES = 10
ERROR_REASON_REQUIRED = "Say why the draw was entered in error."
DRAW_IN_ERROR = "This draw is marked as entered in error; record a new draw."
ACCESSION_TAKEN = "A draw with this accession number already exists."
VERSION_REQUIRED = (
    "This edit does not say which version of the record it was based on (its version), "
    "so it could overwrite a newer change; nothing was saved. Reload the record and edit again."
)


def acknowledged_again(what: str, at: str) -> str:
    """`what` ("this cycle", "this result") was acknowledged by the same person at `at`."""
    return (
        f"You acknowledged {what} at {at}, less than {ACKNOWLEDGED_AGAIN_MINUTES} minutes ago; "
        "it was not acknowledged again."
    )


def line_number_taken(number: int | None) -> str:
    return f"This patient already has a line {number}."
