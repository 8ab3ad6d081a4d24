"""Load what the rules need, in a fixed number of queries, and ask `patients.rules`.

This is the seam between the database and the pure rules: it turns rows into
the rules' plain dataclasses and back into plain results for the API, the
pages and the charts. It decides nothing itself. `loader` reads the rows (one
query per kind, whatever the number of patients) and converts them;
`series` is a patient's assessed series; `ranks` keeps the stored ranks of
cycles and results current; `worklist` sorts and pages the cycles due by them,
and `results` the results to review.
"""

from __future__ import annotations

from ctctrack.pagination import CountedAheadPaginator, capped_count
from patients.assessment.loader import DrawRow, cycle_in, line_in
from patients.assessment.ranks import (
    rank_with_unwritten,
    refresh_review_ranks,
    store_review_ranks,
)
from patients.assessment.results import (
    ResultItem,
    ResultsPage,
    open_results_count,
    result_items,
    results_page,
)
from patients.assessment.series import (
    PatientSeries,
    listed_series_for_many,
    series_for,
    series_for_many,
)
from patients.assessment.worklist import (
    DueCycles,
    WorklistItem,
    WorklistPage,
    acknowledgement_versions,
    due_cycles,
    open_worklist_count,
    worklist,
    worklist_items,
    worklist_order,
    worklist_page,
)

__all__ = [
    "DrawRow",
    "CountedAheadPaginator",
    "DueCycles",
    "PatientSeries",
    "ResultItem",
    "ResultsPage",
    "WorklistItem",
    "WorklistPage",
    "acknowledgement_versions",
    "capped_count",
    "cycle_in",
    "due_cycles",
    "open_results_count",
    "open_worklist_count",
    "line_in",
    "rank_with_unwritten",
    "refresh_review_ranks",
    "result_items",
    "results_page",
    "series_for",
    "listed_series_for_many",
    "series_for_many",
    "store_review_ranks",
    "worklist",
    "worklist_items",
    "worklist_order",
    "worklist_page",
]
