"""Signing in beyond the password: two-factor sign-in, lockout, API tokens, sessions.

Two-factor sign-in (django-otp) uses an authenticator app (TOTP) with ten
one-time recovery codes for when the phone is lost (`mfa`: devices and codes).
Its pages (`views`, `forms`, `urls`) live under /accounts/mfa/ (namespace
"mfa"). Turning it off or making new recovery codes needs a fresh code, so a
stolen session alone cannot remove the second factor; staff reset a user who
lost both in Django admin by deleting their devices. Who must pass the second
step on which request is decided by `middleware.RequireMFAMiddleware`.

Sessions (`middleware.SessionTimeoutMiddleware`) end after the idle limit and
after the absolute limit.

Lockout (django-axes, `backends`): `LoginThrottleBackend` refuses sign-ins
while a username and address are locked, `lockout_response` says until when. A
wrong second-factor code counts as a failed sign-in too.

API tokens (`tokens`): `obtain_token` (POST /api/v1/auth/token/) asks for the
second factor of a user who has one (and refuses users without one when it is
required), so a token is only ever issued after both factors. Requests made
with the token are then not asked again: the token is the interface's
credential; staff revoke it in admin.
"""
