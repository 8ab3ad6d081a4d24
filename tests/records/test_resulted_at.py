"""`resulted_at`: when the software recorded a tube as resulted (spec section 5).

Results to review are listed oldest `resulted_at` first, and a high flag is
escalated a set time after it: it is the entry of a resulted tube or its change
to resulted, kept by a correction of the count, and cleared when the tube is no
longer resulted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from patients import services
from patients.models import CTCDraw
from tests import builders
from tests.paths import DATA

HL7 = DATA / "hl7"

pytestmark = pytest.mark.django_db


class Span:
    """The time a block ran: `resulted_at` must fall inside the write that set it."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment <= self.end


@contextmanager
def span() -> Iterator[Span]:
    found = Span()
    found.start = timezone.now()
    yield found
    found.end = timezone.now()


def _resulted_at(draw: CTCDraw) -> datetime | None:
    return CTCDraw.objects.values_list("resulted_at", flat=True).get(pk=draw.pk)


def _update(draw: CTCDraw, by, **changes) -> None:
    services.update_draw(
        draw=draw, version=builders.version_of(draw), by=by, changes=changes, reason="Lab"
    )


def _pending(patient, by) -> CTCDraw:
    return builders.draw(patient, by, drawn_at=date(2026, 2, 1), status="pending", ctc_count=None)


def test_a_tube_entered_as_resulted_is_resulted_when_entered(patient, oncologist):
    with span() as entry:
        draw = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=3)

    assert _resulted_at(draw) in entry


@pytest.mark.parametrize("status", ["pending", "rejected", "failed", "cancelled"])
def test_a_tube_entered_without_a_count_has_no_resulted_at(patient, oncologist, status):
    draw = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), status=status)

    assert _resulted_at(draw) is None


def test_a_pending_tube_is_resulted_when_its_result_is_entered(patient, oncologist):
    draw = _pending(patient, oncologist)

    with span() as completed:
        _update(draw, oncologist, status="resulted", ctc_count=7)

    assert _resulted_at(draw) in completed


def test_a_correction_of_a_resulted_count_keeps_when_it_was_resulted(patient, oncologist):
    draw = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=3)
    first = _resulted_at(draw)

    _update(draw, oncologist, ctc_count=30)
    _update(draw, oncologist, comment="Recounted by the lab")

    assert _resulted_at(draw) == first


def test_a_result_changed_to_rejected_is_no_longer_resulted(patient, oncologist):
    draw = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=3)

    _update(draw, oncologist, status="rejected", ctc_count=None)

    assert _resulted_at(draw) is None
    with span() as again:  # a count entered for it after all: resulted from then
        _update(draw, oncologist, status="resulted", ctc_count=4)
    assert _resulted_at(draw) in again


def _send(api, name: str) -> None:
    r = api.generic(
        "POST", "/api/v1/hl7/oru/", data=(HL7 / name).read_bytes(), content_type="text/plain"
    )
    assert r.status_code == 200 and b"|AA|" in r.content


def test_a_lab_result_completing_a_pending_tube_is_resulted_then_and_a_correction_keeps_it(
    api, patient, oncologist
):
    # The messages' draw: 1 Mar 2026 07:30 UTC, accession CS-26-0101.
    draw = builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 3, 1, 7, 30, tzinfo=UTC),
        status="pending",
        ctc_count=None,
        accession="CS-26-0101",
    )
    api.force_authenticate(oncologist)

    with span() as completed:
        _send(api, "oru_r01_final.hl7")
    first = _resulted_at(draw)
    _send(api, "oru_r01_corrected.hl7")

    assert first in completed
    assert CTCDraw.objects.get(pk=draw.pk).version == 3  # completed, then corrected
    assert _resulted_at(draw) == first


def test_a_csv_import_records_when_its_results_arrived(patient, tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text(
        "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"
        "MRN0001,2026-02-01 09:00,7.5,resulted,3,CS-1,\n"
        "MRN0001,2026-02-08 09:00,7.5,rejected,,CS-2,Haemolysed\n"
    )

    with span() as imported:
        call_command("import_ctc", str(path), stdout=StringIO(), stderr=StringIO())

    resulted_at = dict(CTCDraw.objects.values_list("accession", "resulted_at"))
    assert resulted_at["CS-1"] in imported
    assert resulted_at["CS-2"] is None


def test_the_time_is_the_softwares_not_the_draws(patient, oncologist):
    draw = builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 2, 1, 9, tzinfo=UTC), ctc_count=3
    )

    assert _resulted_at(draw) > draw.drawn_at  # recorded now, long after it was drawn
