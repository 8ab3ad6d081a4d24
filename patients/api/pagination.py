from __future__ import annotations

from typing import Any

from rest_framework import pagination

from patients.assessment import CountedAheadPaginator

# A long list counts at most this many items beyond the page asked for (`count_capped`).
COUNTED_AHEAD = 1000


class PageNumberPagination(pagination.PageNumberPagination):
    """`count`, `next`, `previous`, `results`; `?page_size=` up to 500."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class CountedAheadPagination(PageNumberPagination):
    """As `PageNumberPagination`, but counting at most `COUNTED_AHEAD` items beyond the
    page asked for: `count` is exact while `count_capped` is false, otherwise more than
    `count` items wait. For a list that may hold tens of thousands (the results to
    review after an upgrade from rules version 1), where an exact count would cost more
    than the page."""

    def django_paginator_class(self, object_list: Any, per_page: int) -> CountedAheadPaginator:  # type: ignore[override]
        return CountedAheadPaginator(object_list, per_page, ahead=COUNTED_AHEAD)

    def count_fields(self) -> dict[str, Any]:
        """`count` and `count_capped` of the page last paginated."""
        assert self.page is not None
        paginator = self.page.paginator
        assert isinstance(paginator, CountedAheadPaginator)
        if paginator.capped:
            return {"count": paginator.count_cap, "count_capped": True}
        return {"count": paginator.count, "count_capped": False}
