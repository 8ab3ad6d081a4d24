"""The template filters that write a day or a time the way `patients.wording` does.

Registered as template builtins (settings.TEMPLATES), so every template says
`{{ cycle.scheduled_date|day }}` ("Thu 3 Dec 2026") and `{{ draw.drawn_at|moment }}`
("3 Dec 2026 08:30") without loading anything, and a page, the PDF, the chart and
the rules' messages cannot drift apart. Machine-readable values (`<time datetime>`,
form inputs) keep Django's `date` filter with an ISO format.
"""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.utils import timezone

from patients import wording

register = template.Library()


@register.filter(expects_localtime=True)
def day(value: date | datetime | None) -> str:
    """A day, "Thu 3 Dec 2026"; a datetime is taken on its local day. Empty for no value."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return wording.date_text(value)


@register.filter(expects_localtime=True)
def moment(value: datetime | None) -> str:
    """A date and time to the minute in the local zone, "3 Dec 2026 08:30". Empty for no value."""
    if value is None or value == "":
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return wording.time_text(value)
