"""The trend chart's text alternative: what the chart shows, in a sentence or two.

For alt text and screen readers. Reads the same plain ChartData as the chart
and words every value with patients.wording; it draws nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from patients import rules, wording
from patients.reports.chart_data import ChartData, plotted_draws, rate_of


def chart_text_alternative(data: ChartData) -> str:
    """One or two sentences that say what the chart shows, for alt text and screen readers."""
    plotted = plotted_draws(data.assessments)
    if not plotted:
        return "No CTC draws recorded yet."
    evaluable = [a for a in plotted if a.evaluable]
    counted = f"{_draws(len(plotted))} ({len(evaluable)} evaluable)"
    if not evaluable:
        sentence = f"No evaluable CTC count yet: {counted}."
    else:
        latest = evaluable[-1]
        rate = wording.count_phrase(rate_of(latest), qualifier=latest.draw.count_qualifier)
        on = wording.date_text(latest.draw.drawn_on)
        sentence = (
            f"Latest CTC count {rate} on {on}, "
            f"{_category_text(latest, data)}{_trend_text(evaluable)}; {counted}."
        )
    # The category sentence already says "unfavourable" or "not classified".
    said = {rules.FlagCode.UNFAVOURABLE, rules.FlagCode.NO_CUTOFF}
    messages = [flag.message for flag in plotted[-1].flags if flag.code not in said]
    if messages:
        on = wording.date_text(plotted[-1].draw.drawn_on)
        sentence += f" Latest draw ({on}): " + "; ".join(messages) + "."
    return sentence


def _draws(count: int) -> str:
    return f"{count} draw{'s' if count != 1 else ''}"


def _category_text(latest: rules.DrawAssessment, data: ChartData) -> str:
    if latest.category is None:
        return f"not classified (no cut-off for {data.cancer_type or 'this cancer type'})"
    return f"{latest.category.value} (cut-off {data.cutoff})"


def _trend_text(evaluable: Sequence[rules.DrawAssessment]) -> str:
    if len(evaluable) < 2:
        return ""
    previous, latest = evaluable[-2], evaluable[-1]
    change = rate_of(latest) - rate_of(previous)
    direction = "up from" if change > 0 else "down from" if change < 0 else "unchanged from"
    rate = wording.count_phrase(rate_of(previous), qualifier=previous.draw.count_qualifier)
    on = wording.date_text(previous.draw.drawn_on)
    return f", {direction} {rate} on {on}"
