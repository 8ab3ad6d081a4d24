"""CSV cells a spreadsheet opens as text: the one rule every CSV export uses.

A cell that starts like a formula runs as one in Excel or LibreOffice (OWASP
"CSV injection"): `=HYPERLINK(...)` typed as a username or a draw's comment would
become a live link in whoever opens the export. Such a cell gets a leading
apostrophe, which spreadsheets read as "this is text" and do not show.
"""

from __future__ import annotations

import unicodedata

# OWASP's list: the four formula characters, and tab and carriage return (which some
# spreadsheets skip before reading the next character as the cell's start).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """`value` with a leading apostrophe when it starts like a formula, else unchanged.

    The first character is also judged as Unicode's compatibility form (NFKC)
    reads it, since spreadsheets and their import paths may fold a look-alike
    into the formula character: fullwidth `＝ ＋ － ＠` (U+FF1D, U+FF0B, U+FF0D,
    U+FF20), the small forms `﹦ ﹢ ﹣ ﹫`, `⩵` ("==").
    """
    first = value[:1]
    if first in FORMULA_STARTS or unicodedata.normalize("NFKC", first)[:1] in FORMULA_STARTS:
        return "'" + value
    return value
