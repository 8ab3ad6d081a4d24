"""The trend chart's text alternative: what the chart shows, in a sentence or two.

For alt text and screen readers. Reads the same plain ChartData as the chart
(one point per sample) and words every value with patients.wording; it draws
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from patients import rules, wording
from patients.reports.chart_data import (
    ChartData,
    ChartIdentity,
    chance_of,
    plotted_points,
    point_key,
    rate_of,
    tubes_of,
)


def chart_text_alternative(data: ChartData) -> str:
    """One or two sentences that say what the chart shows, for alt text and screen readers."""
    plotted = plotted_points(data.assessments)
    if not plotted:
        return "No CTC draws recorded yet."
    evaluable = [a for a in plotted if a.evaluable]
    counted = f"{_draws(len(plotted))} ({len(evaluable)} evaluable)"
    if not evaluable:
        sentence = f"No evaluable CTC count yet: {counted}."
    else:
        latest = evaluable[-1]
        on = wording.date_text(latest.draw.drawn_on)
        sentence = (
            f"Latest CTC count {_phrase(latest)}{_pooled(latest)} on {on}, "
            f"{_category_text(latest, data)}{_chance_text(latest)}{_trend_text(evaluable)}; "
            f"{counted}."
        )
    # The category sentence already says "not classified".
    messages = [flag.message for flag in plotted[-1].flags if flag.code != rules.FlagCode.NO_CUTOFF]
    if messages:
        on = wording.date_text(plotted[-1].draw.drawn_on)
        sentence += f" Latest draw ({on}): " + "; ".join(messages) + "."
    if any(a.censored for a in evaluable):
        sentence += " A count shown as more than a number is a lower bound."
    return sentence


def _draws(count: int) -> str:
    return f"{count} draw{'s' if count != 1 else ''}"


def _phrase(a: rules.DrawAssessment) -> str:
    return wording.count_phrase(rate_of(a), censored=a.censored)


def _pooled(a: rules.DrawAssessment) -> str:
    tubes = tubes_of(a)
    return f" ({tubes} tubes pooled)" if tubes > 1 else ""


def _category_text(latest: rules.DrawAssessment, data: ChartData) -> str:
    if latest.category is None:
        return f"not classified (no cut-off for {data.cancer_type or 'this cancer type'})"
    return f"{latest.category.value} (cut-off {data.cutoff})"


def _chance_text(latest: rules.DrawAssessment) -> str:
    chance = chance_of(latest)
    return f", {rules.chance_text(chance)}" if chance is not None else ""


def _trend_text(evaluable: Sequence[rules.DrawAssessment]) -> str:
    if len(evaluable) < 2:
        return ""
    previous, latest = evaluable[-2], evaluable[-1]
    change = rate_of(latest) - rate_of(previous)
    direction = "up from" if change > 0 else "down from" if change < 0 else "unchanged from"
    # A lower bound's true count is higher: only a change that holds whatever it is is said.
    if (latest.censored and change <= 0) or (previous.censored and change >= 0):
        direction = "after"
    on = wording.date_text(previous.draw.drawn_on)
    return f", {direction} {_phrase(previous)} on {on}"


def point_tooltips(data: ChartData) -> list[str]:
    """The tooltip of every point the chart plots, in plotted order (one per sample)."""
    zone = ZoneInfo(data.time_zone)
    return [point_tooltip(a, data, zone) for a in plotted_points(data.assessments)]


def point_tooltip(a: rules.DrawAssessment, data: ChartData, zone: ZoneInfo) -> str:
    """What one point is, exactly, on lines: when, the count, the rate, the interval, the flags.

    "3 Dec 2026 08:30", "9 CTC counted in 5 mL", "13.5 CTC/7.5 mL: unfavourable
    (cut-off 5)", "95% interval 6.2 to 25.6", then its flags, then whether they are
    acknowledged.
    """
    lines = [wording.time_text(a.draw.drawn_at.astimezone(zone))]
    if a.evaluable and a.sample is not None:
        sample = a.sample.sample
        lines.append(
            wording.counted_in_volume(sample.count, sample.volume_ml, censored=sample.censored)
            + _pooled(a)
        )
        category = (
            f"{a.category.value} (cut-off {data.cutoff})"
            if a.category is not None
            else "not classified (no cut-off)"
        )
        lines.append(f"{_phrase(a)}: {category}")
        if a.ci95 is not None:
            lines.append(f"95% interval {wording.interval_text(a.ci95)}")
        chance = chance_of(a)
        if chance is not None:
            lines.append(rules.chance_text(chance))
    else:
        lines.append(f"not evaluable ({a.draw.status})")
    flags = [
        flag.message
        if flag.severity == rules.Severity.INFO
        else f"{flag.message} ({flag.severity})"
        for flag in a.flags
        if flag.code != rules.FlagCode.NO_CUTOFF
    ]
    lines.append("Flags: " + "; ".join(flags) if flags else "No flags")
    if point_key(a) in data.acknowledged:
        lines.append("Flags acknowledged")
    return "\n".join(lines)


def identity_text(identity: ChartIdentity) -> str:
    """Whose chart it is and when it was made, printed on every exported picture."""
    return (
        f"{identity.name} · MRN {identity.mrn} · born {wording.date_text(identity.birth_date)}"
        f" · chart made {wording.date_text(identity.made_on)}"
    )
