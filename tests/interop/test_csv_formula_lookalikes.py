"""A CSV cell that a spreadsheet could run as a formula is neutralised, look-alikes too.

OWASP's "CSV injection" list (`=`, `+`, `-`, `@`, tab, carriage return) applies to
the character as a spreadsheet may read it: a fullwidth `＝` (U+FF1D) or a small
`﹦` (U+FE66) is folded to `=` by Unicode NFKC, as some spreadsheets and import
paths do. Both exports (the draws CSV and the access log CSV) use the same rule.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from patients import audit, services
from patients.interop.csv.exports import safe_text

pytestmark = pytest.mark.django_db

RUNS_AS_A_FORMULA = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "＝1+1",  # U+FF1D FULLWIDTH EQUALS SIGN
    "＋1",  # U+FF0B FULLWIDTH PLUS SIGN
    "－1",  # U+FF0D FULLWIDTH HYPHEN-MINUS
    "＠SUM(A1)",  # U+FF20 FULLWIDTH COMMERCIAL AT
    "﹦1",  # U+FE66 SMALL EQUALS SIGN
    "﹢1",  # U+FE62 SMALL PLUS SIGN
    "﹣1",  # U+FE63 SMALL HYPHEN-MINUS
    "﹫x",  # U+FE6B SMALL COMMERCIAL AT
    "⩵1",  # U+2A75 TWO CONSECUTIVE EQUALS SIGNS (NFKC: "==")
]
PLAIN = ["MRN0001", "ACC-1", "Called the patient", "", " =1", "１２３", "ＡＢＣ", "≠1", "'=1"]


@pytest.mark.parametrize("value", RUNS_AS_A_FORMULA, ids=ascii)
def test_a_cell_starting_like_a_formula_gets_a_leading_apostrophe(value):
    assert safe_text(value) == "'" + value


@pytest.mark.parametrize("value", PLAIN, ids=ascii)
def test_any_other_cell_is_left_as_it_is(value):
    assert safe_text(value) == value


def _rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_draws_export_neutralises_a_fullwidth_equals_sign(client, oncologist, patient):
    services.record_draw(
        patient=patient,
        by=oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="＠A1",
        comment='＝HYPERLINK("http://evil.example")',
    )
    client.force_login(oncologist)

    header, row = _rows(client.get(f"/patients/{patient.pk}/draws.csv"))

    cells = dict(zip(header, row, strict=True))
    assert cells["comment"] == '\'＝HYPERLINK("http://evil.example")'
    assert cells["accession"] == "'＠A1"


def test_the_access_log_export_neutralises_a_fullwidth_equals_sign(client, admin_user):
    audit.record(None, "login_failed", username="＝HYPERLINK(1)", outcome="failed")
    client.force_login(admin_user)

    rows = _rows(client.get("/audit/", {"action": "login_failed", "format": "csv"}))

    assert rows[1][3] == "'＝HYPERLINK(1)"
