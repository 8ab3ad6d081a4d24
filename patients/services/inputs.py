"""What a caller hands the services: plain inputs, in no channel's wire format.

Each channel turns what it read into these: the services never import a
channel's own types (`patients.interop` depends on the services, not the other
way round). A CSV row extends `DrawInput` with its line number, so a file of
100,000 rows is handed over without a copy; the HL7 layer copies each result
into a `LabResultInput`, its parser staying free of Django. An edit, from a
form or from the API, is split into its parts by `split_edit`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple


@dataclass(frozen=True)
class DrawInput:
    """One CTC draw to record for the patient with this MRN (a bulk import's row)."""

    mrn: str
    drawn_at: datetime  # time-zone aware
    blood_volume_ml: Decimal
    status: str  # a DrawStatus value
    ctc_count: int | None
    count_qualifier: str  # "" exact, ">" `ctc_count` is a lower bound (a CountQualifier value)
    accession: str
    comment: str


@dataclass(frozen=True)
class LabResultInput(DrawInput):
    """One CTC result from a lab; `corrected`: the lab sent it to replace an earlier one.

    `identity`: who the lab says the patient is, checked against the patient
    the MRN names before anything is stored.
    """

    corrected: bool
    identity: SentIdentity | None = None


@dataclass(frozen=True)
class SentIdentity:
    """A lab's word on the patient besides the MRN; empty values were not sent."""

    family_names: tuple[str, ...] = ()  # every family name sent (legal, maiden...)
    birth_date: str = ""  # YYYY, YYYYMM or YYYYMMDD
    sex: str = ""  # HL7 table 0001: F, M, O; U, A, N and others say nothing here


class Edit(NamedTuple):
    """An edit as the update services take it: the changes, the version it started from, why."""

    changes: dict[str, Any]
    version: int | None
    reason: str


def split_edit(data: Mapping[str, Any], *, changed: Collection[str] | None = None) -> Edit:
    """Split validated edit data (a form's or a serializer's) into the update's parts.

    `changed`: the fields the editor changed (a form's `changed_data`); a PATCH
    carries only the fields sent, so a serializer's data needs no filter.
    """
    fields = dict(data)
    version = fields.pop("version", None)
    reason = fields.pop("reason", "") or ""
    if changed is not None:
        fields = {name: value for name, value in fields.items() if name in changed}
    return Edit(fields, version, reason)
