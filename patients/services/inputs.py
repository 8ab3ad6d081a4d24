"""What a caller hands the services: plain inputs, in no channel's wire format.

Each channel turns what it read into these: the services never import a
channel's own types (`patients.interop` depends on the services, not the other
way round). A CSV row extends `DrawInput` with its line number, so a file of
100,000 rows is handed over without a copy; the HL7 layer copies each result
into a `LabResultInput`, its parser staying free of Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class DrawInput:
    """One CTC draw to record for the patient with this MRN (a bulk import's row)."""

    mrn: str
    drawn_at: datetime  # time-zone aware
    blood_volume_ml: Decimal
    status: str  # a DrawStatus value
    ctc_count: int | None
    accession: str
    comment: str


@dataclass(frozen=True)
class LabResultInput(DrawInput):
    """One CTC result from a lab; `corrected`: the lab sent it to replace an earlier one."""

    corrected: bool
