"""Form helpers every form of the project uses: date inputs, and the focus on the first error.

They know nothing of patients, so the clinicians' pages, sign-in, the CSV upload
and the audit report share them.
"""

from __future__ import annotations

from typing import Any

from django import forms


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class DateTimeLocalInput(forms.DateTimeInput):
    """`<input type="datetime-local">`, read in the clinic's time zone."""

    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def focus_first_error(form: forms.Form) -> None:
    """Put the keyboard focus on the first field with an error, without JavaScript.

    `autofocus` moves the focus when the page loads; a screen reader then reads
    the field's label and its error. With only form-wide errors, the error
    summary (focusable via tabindex="-1" in the template) takes the focus.
    """
    if not form.is_bound or not form.errors:
        return
    for name, field in form.fields.items():
        if name in form.errors and not field.widget.is_hidden:
            field.widget.attrs["autofocus"] = True
            return
    # A flag for the template (patients/form.html), set on a form of any class:
    # forms.Form declares no such attribute, and the forms that come here share no base.
    form.focus_summary = True  # type: ignore[attr-defined]
