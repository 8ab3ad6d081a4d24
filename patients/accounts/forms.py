"""The form of the two-factor pages: one code, checked against the user's devices."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from ctctrack.forms import focus_first_error
from patients.accounts.mfa import check_code, valid_enrolment


class CodeForm(forms.Form):
    """One code field, checked against the user's devices (or one device being set up)."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        error_messages={"required": "Enter a code."},
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
    )

    def __init__(
        self, *args: Any, user: AbstractBaseUser, device: TOTPDevice | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.pending = device
        self.device: Device | None = None
        if device is not None:  # setting up: only the new app's code confirms it
            self.fields["code"].help_text = "The 6-digit code your authenticator app shows now."

    def full_clean(self) -> None:
        super().full_clean()
        focus_first_error(self)  # the page opens on the code field, its error read out

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        self.device = check_code(self.user, code, device=self.pending)
        return code


class EnrolmentCodeForm(forms.Form):
    """The one-time enrolment code staff gave the user, before the set-up shows a secret."""

    enrolment_code = forms.CharField(
        label="Enrolment code",
        max_length=32,
        error_messages={"required": "Enter the enrolment code you were given."},
        help_text="12 letters and digits, like ABCD-EFGH-JKMN, given to you in person or by phone.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, user: AbstractBaseUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.enrolment: Any = None

    def clean_enrolment_code(self) -> str:
        code = self.cleaned_data["enrolment_code"]
        self.enrolment = valid_enrolment(self.user, code)
        if self.enrolment is None:
            raise forms.ValidationError(
                "This enrolment code is not valid: it may be mistyped, used already or "
                "expired. Ask an administrator for a new one."
            )
        return code
