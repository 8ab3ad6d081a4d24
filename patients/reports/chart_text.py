"""The trend chart's text alternative: what the chart shows, in a sentence or two.

For alt text and screen readers. Reads the same plain ChartData as the chart
(one point per sample) and words every value with patients.wording; it draws
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from patients import rules, wording
from patients.reports.chart_data import ChartData, chance_of, plotted_points, rate_of, tubes_of


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
