"""Long lists counted only as far as a page needs: the results to review, the API's lists
and the audit report, each of which may hold hundreds of thousands of rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

if TYPE_CHECKING:  # the stubs' Paginator is generic; Django's cannot be subscripted
    _Paginator = Paginator[Any]
else:
    _Paginator = Paginator

__all__ = ["CountedAheadPaginator", "capped_count"]


def capped_count(rows: QuerySet[Any], cap: int) -> int:
    """`rows.count()`, but reading at most `cap + 1` rows: `SELECT COUNT(*) FROM
    (SELECT ... LIMIT cap + 1)`, which stops at the limit whatever the table holds."""
    return rows.select_related(None).order_by().values("pk")[: cap + 1].count()


class CountedAheadPaginator(_Paginator):
    """A paginator that counts only as far as the page asked for, plus `ahead` rows.

    What a long list needs of its count is whether the page exists and whether
    more follow; counting every row to say so costs as much as the rows. So the
    count reads at most `ahead + 1` rows beyond the asked page's last: a page
    far off still costs only its own offset, and a count above `count_cap`
    (`capped`) means "more than `count_cap`", never a number that is not true.
    """

    def __init__(self, object_list: QuerySet[Any], per_page: int, *, ahead: int) -> None:
        super().__init__(object_list, per_page)
        self.rows = object_list
        self.ahead = ahead
        self.asked = 1

    def validate_number(self, number: Any) -> int:
        # Called before the count (by `page`, `get_page`): note how far it must reach.
        try:
            self.asked = max(int(number), 1)
        except (TypeError, ValueError):
            self.asked = 1
        return super().validate_number(number)

    @property
    def count_cap(self) -> int:
        return self.asked * self.per_page + self.ahead

    @cached_property
    def count(self) -> int:
        return capped_count(self.rows, self.count_cap)

    @property
    def capped(self) -> bool:
        """More rows than `count_cap` wait: `count` is a lower bound, not the number."""
        return self.count > self.count_cap
