"""The clinic's duplicate tubes, loaded for the replicate-variation estimate.

One query, whatever the number of patients or tubes: the plain values of every
resulted tube among the draws given (not those entered in error), in the order
`patients.replicates.Tube` reads them. Which samples are pairs, and the estimate,
are `patients.replicates`' (pure).
"""

from __future__ import annotations

from django.db.models import QuerySet

from patients import replicates
from patients.models import CTCDraw, DrawStatus

# The draw's fields the estimate reads, named as the model names them.
TUBE_FIELDS: tuple[str, ...] = replicates.Tube._fields


def tubes(among: QuerySet[CTCDraw]) -> list[replicates.Tube]:
    """The resulted tubes among these draws (a caller's `access.draws(user)`, or every
    draw for the system), those entered in error left out. Tubes that are not evaluable
    never make or break a pair, so they are not read."""
    rows = (
        among.filter(status=DrawStatus.RESULTED, entered_in_error=False)
        .order_by()
        .values_list(*TUBE_FIELDS)
    )
    return [replicates.Tube._make(row) for row in rows]


def replicate_estimate(among: QuerySet[CTCDraw]) -> replicates.ReplicateEstimate:
    """The spec's replicate-variation estimate from the duplicate pairs among these draws."""
    return replicates.estimate_cv(replicates.duplicate_pairs(tubes(among)))
