"""CSV export of CTC draws with what the rules say about each one.

Plain rows from assessed series (`assessment.PatientSeries`); the views stream
them. Cells a spreadsheet would read as a formula are neutralised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.utils import timezone

from ctctrack.spreadsheets import safe_text
from patients import wording
from patients.assessment import PatientSeries
from patients.models import CTCDraw

HEADER = [
    "mrn",
    "drawn_at",
    "blood_volume_ml",
    "status",
    "ctc_count",
    "count_qualifier",  # ">": ctc_count is a lower bound (">1000"); empty: exact
    "accession",
    "comment",
    # The sample: every evaluable tube drawn at the same time, pooled. The rate, category,
    # interval, chance and flags are the sample's, on each of its tubes.
    "sample_tubes",
    "sample_count",  # ">1000" when a tube's count is a lower bound
    "sample_volume_ml",
    "rate_per_7_5_ml",
    "category",
    "ci95_low",
    "ci95_high",  # empty for a lower bound: it has no upper limit
    "p_at_or_above_cutoff",
    "flags",
    "flag_messages",
    "entered_in_error",
    "error_reason",
]


def series_rows(series: PatientSeries) -> Iterator[list[str]]:
    """One row per draw on record (entered-in-error ones included, marked), oldest first."""
    for draw in series.all_draws():
        yield _row(series, draw)


def all_rows(many: Iterable[PatientSeries]) -> Iterator[list[str]]:
    for series in many:
        yield from series_rows(series)


def _row(series: PatientSeries, draw: CTCDraw) -> list[str]:
    found = series.by_draw_id.get(draw.pk)
    ci = found.ci95 if found else None
    flags = found.flags if found else ()
    sample = found.sample.sample if found and found.evaluable and found.sample else None
    p = found.p_at_or_above_cutoff if found else None
    return [
        safe_text(series.patient.mrn),
        timezone.localtime(draw.drawn_at).isoformat(),
        wording.volume_text(draw.blood_volume_ml),
        draw.status,
        "" if draw.ctc_count is None else str(draw.ctc_count),
        draw.count_qualifier,
        safe_text(draw.accession),
        safe_text(draw.comment),
        "" if sample is None else str(len(sample.tubes)),
        "" if sample is None else f"{'>' if sample.censored else ''}{sample.count}",
        "" if sample is None else wording.volume_text(sample.volume_ml),
        "" if not found or found.rate_per_7_5_ml is None else f"{found.rate_per_7_5_ml:g}",
        str(found.category or "") if found else "",
        # As printed everywhere (wording.interval_text), without the thousands separator.
        "" if ci is None else wording.interval_bound(ci[0], upper=False).replace(",", ""),
        ""
        if ci is None or ci[1] is None
        else wording.interval_bound(ci[1], upper=True).replace(",", ""),
        "" if p is None else f"{p:.3f}",
        ";".join(str(f.code) for f in flags),
        safe_text(" | ".join(f.message for f in flags)),
        "yes" if draw.entered_in_error else "",
        safe_text(draw.error_reason),
    ]
