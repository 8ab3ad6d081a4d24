"""Results to review: every result with a high or review flag not yet acknowledged.

Whether or not a cycle is due (spec section 5): a high result drawn outside every
window, or for a patient with no cycle entered, is listed here until a nurse or
oncologist acknowledges it. The database sorts and pages the tubes that stand
for such results by their stored rank (`assessment.ranks`): most severe first,
then the oldest first (`resulted_at`, or when a lone failed tube was entered).
Only a page's patients are then assessed, live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce

from ctctrack.pagination import capped_count
from patients import rules
from patients.assessment.series import PatientSeries, listed_series_for_many
from patients.models import CTCDraw, Patient

logger = logging.getLogger(__name__)
P = TypeVar("P", bound=Iterable[CTCDraw])


@dataclass
class ResultItem:
    """One result to review: a sample (by its first tube) or a lone not-evaluable tube."""

    draw: CTCDraw
    series: PatientSeries
    found: rules.DrawAssessment

    @property
    def patient(self) -> Patient:
        return self.series.patient

    @property
    def flags(self) -> tuple[rules.Flag, ...]:
        return self.found.flags

    @property
    def severity(self) -> rules.Severity | None:
        return rules.highest_severity(self.found.flags)

    @property
    def escalated(self) -> bool:
        return self.draw.escalated_at is not None

    @property
    def resulted_at(self) -> datetime | None:
        return self.draw.resulted_at

    @property
    def reported_at(self) -> datetime:
        """When the result reached the record: resulted, or for a lone failed or rejected
        tube (never resulted) when it was entered."""
        return self.draw.resulted_at or self.draw.entered_at

    @property
    def tubes(self) -> tuple[rules.DrawIn, ...]:
        """Every tube of the result as the rules read it, the first (this one) first."""
        sample = self.found.sample
        return (self.found.draw,) if sample is None else sample.sample.tubes


def waiting(among: QuerySet[CTCDraw]) -> QuerySet[CTCDraw]:
    """The tubes standing for unacknowledged results to review, in the list's order.

    Oldest first by when each result reached the record (`REPORTED_AT`): a lone
    failed or rejected tube was never resulted (no `resulted_at`) and takes its
    place by when it was entered, not after every result of its severity.
    """
    return (
        among.filter(review_rank__isnull=False, review_acknowledged=False, entered_in_error=False)
        .select_related("patient", "entered_by")
        .order_by("review_rank", REPORTED_AT, "id")
    )


# When a result reached the record, as `ResultItem.reported_at` says it.
REPORTED_AT = Coalesce(F("resulted_at"), F("entered_at"))


def result_items(draws: Iterable[CTCDraw]) -> list[ResultItem]:
    """The rows of a page, in the order given, each assessed live: four queries.

    A row whose stored rank is not the live one is logged (the list's order is
    stale) and still shown while it needs review; one that no longer needs review
    is left out.
    """
    draws = list(draws)
    series = listed_series_for_many({d.patient for d in draws})
    items, stale = [], []
    for draw in draws:
        found = series[draw.patient_id].by_draw_id.get(draw.pk)
        if found is None or not found.needs_review:
            stale.append(draw.pk)
            continue
        item = ResultItem(draw, series[draw.patient_id], found)
        if _live_rank(item) != (draw.review_rank, draw.review_acknowledged):
            stale.append(draw.pk)
        items.append(item)
    if stale:
        # Only a settings change (cut-offs, clarity, replicate variation, time zone)
        # without `manage.py refresh_review_ranks` can do this: say so, loudly.
        logger.error(
            "Stored rank differs from the rules for results %s: the results to review "
            "are stale; run `manage.py refresh_review_ranks`.",
            ", ".join(map(str, stale)),
        )
    return items


def _live_rank(item: ResultItem) -> tuple[int | None, bool]:
    severity = item.severity
    rank = rules.SEVERITY_ORDER[severity] if severity is not None else None
    return (rank, item.series.result_acknowledged(item.found))


@dataclass(frozen=True)
class ResultsPage(Generic[P]):
    """A page of results: what the paginator gave, its tubes in order, and their rows
    assessed (all but those the caller said it already has)."""

    page: P
    items: list[ResultItem]
    draws: list[CTCDraw] = field(default_factory=list)


def results_page(
    paginate: Callable[[QuerySet[CTCDraw]], P],
    *,
    among: QuerySet[CTCDraw],
    known: Callable[[list[CTCDraw]], Collection[int]] = lambda draws: (),
) -> ResultsPage[P]:
    """Results to review as the page and the API show them: one page, assessed.

    `among`: the tubes the user may see (`patients.access.draws`). `known`: given the
    page's tubes, the ids of those whose rows the caller has already (the page's cache
    of rendered rows): they are not assessed.
    """
    page = paginate(waiting(among))
    draws = list(page)
    have = known(draws)
    return ResultsPage(page, result_items([d for d in draws if d.pk not in have]), draws)


def open_results_count(*, among: QuerySet[CTCDraw], cap: int) -> int:
    """How many results wait for review, counted only up to `cap + 1`.

    The header says "99+" rather than an exact number: a clinic upgrading from
    rules version 1 may hold tens of thousands of results at once (until
    `manage.py acknowledge_history`), and counting them all on every page would
    cost more than the page. A count above `cap` means "more than `cap`".
    """
    return capped_count(waiting(among), cap)
