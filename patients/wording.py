"""How CTC Track puts a value into words: rates, counts, intervals, volumes, ages and dates.

One function per way of saying a thing, used by the rules' messages, the web
pages, the PDF report, the charts, the CSV export and the FHIR notes, so that
they all say it the same way. Plain values in, text out: no Django, no models
and no other `patients` module, so every layer may import it.

What a value means and when it is shown is decided elsewhere (patients.rules,
the presenters, the report); this module only says how it reads.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

NONE_DETECTED = "none detected"
# --- rates per 7.5 mL ----------------------------------------------------------------


def format_rate(rate: float) -> str:
    """A rate as shown: whole numbers bare, others with one decimal.

    The decimal is rounded down so that the figure shown never reaches an
    (integer) cut-off the rate itself is below: 4.96 shows as 4.9, not 5.0.
    """
    if rate == int(rate):
        return str(int(rate))
    return str(Decimal(repr(rate)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR))


def short_rate(rate: float, *, censored: bool = False) -> str:
    """A rate per 7.5 mL where the unit is said already (a table column): 0 is "none detected".

    A censored count (a lower bound) reads "> 1000".
    """
    if censored:
        return f"> {format_rate(rate)}"
    return NONE_DETECTED if rate == 0 else format_rate(rate)


def count_phrase(rate: float, *, censored: bool = False) -> str:
    """A rate per 7.5 mL in words: 0 is "none detected in 7.5 mL", a bound "> 1000 CTC/7.5 mL"."""
    if censored:
        return f"> {format_rate(rate)} CTC/7.5 mL"
    if rate == 0:
        return f"{NONE_DETECTED} in 7.5 mL"
    return f"{format_rate(rate)} CTC/7.5 mL"


# --- counts as measured ------------------------------------------------------------------


def volume_text(volume: Decimal | float) -> str:
    """A blood volume in mL without trailing zeros: "7.5", "4.25", "5", "10"."""
    # repr() keeps a float's intended decimal value (7.1, not 7.0999...).
    value = volume if isinstance(volume, Decimal) else Decimal(repr(volume))
    return format(value.normalize(), "f")


def counted_in_volume(count: int, volume: Decimal | float, *, censored: bool = False) -> str:
    """A count as the lab measured it, in a sentence: "9 CTC counted in 5 mL".

    0 reads "none detected in 4 mL"; a lower bound "more than 1000 CTC counted in 10 mL".
    """
    if censored:
        return f"more than {count} CTC counted in {volume_text(volume)} mL"
    if count == 0:
        return f"{NONE_DETECTED} in {volume_text(volume)} mL"
    return f"{count} CTC counted in {volume_text(volume)} mL"


def count_in_volume(count: int, volume: Decimal | float, *, censored: bool = False) -> str:
    """A count as the lab measured it, in a table cell: "1,234 in 4.25 mL", "> 1,000 in 7.5 mL"."""
    bound = "> " if censored else ""
    return f"{bound}{count:,} in {volume_text(volume)} mL"


# --- 95% intervals -------------------------------------------------------------------


def interval_text(ci95: tuple[float, float | None]) -> str:
    """A 95% interval, the one way it is printed everywhere: "1.6 to 11.7", "0.0 to 3.7".

    On the pages, in the PDF, in the chart's tooltips and in the CSV export. One
    decimal on each bound, rounded outward (the lower bound down, the upper up), so
    that the printed interval always contains the one computed. A censored count has
    only a lower limit: "at least 891.2".
    """
    if ci95[1] is None:
        return f"at least {interval_bound(ci95[0], upper=False)}"
    return f"{interval_bound(ci95[0], upper=False)} to {interval_bound(ci95[1], upper=True)}"


def interval_bound(value: float, *, upper: bool) -> str:
    """One bound of a 95% interval with one decimal, rounded outward: "1.6", "11.7", "2,302.7"."""
    rounding = ROUND_CEILING if upper else ROUND_FLOOR
    return format(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=rounding), ",")


# --- numbers of things ------------------------------------------------------------------


def how_many(count: int, noun: str, plural: str | None = None) -> str:
    """A number of things, in words that agree with it: "1 draw", "2 draws", "1,000 draws"."""
    return f"{count:,} {noun_for(count, noun, plural)}"


def noun_for(count: int, noun: str, plural: str | None = None) -> str:
    """The noun that agrees with a number, without it: "column" for 1, "columns" otherwise."""
    return noun if count == 1 else plural or noun + "s"


# --- people and time ---------------------------------------------------------------------


def age_in_years(birth: date, on: date) -> int:
    """Completed years on `on`: the age goes up on the birthday itself."""
    before_birthday = (on.month, on.day) < (birth.month, birth.day)
    return on.year - birth.year - before_birthday


def date_text(day: date) -> str:
    """A day as people read it, everywhere a person reads one: "Thu 3 Dec 2026".

    The pages (the `day` template filter), the PDF, the chart and the rules' messages all
    say a day this way: the weekday because a ward plans by it, the month in words so that
    it reads the same in every country (07/03 does not). Machine formats (the API, FHIR,
    the CSV export) keep ISO 8601 and do not use this.
    """
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def time_text(moment: datetime) -> str:
    """A date and time to the minute, "3 Dec 2026 08:30", in the zone `moment` is already in.

    No weekday: a time names a moment already past (a draw, an edit), not a day to plan.
    The pages say the same with the `moment` template filter.
    """
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M}"


# English names whatever the server's locale (strftime's %a and %b follow LC_TIME).
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
