"""The plan of a query as PostgreSQL ran it: the work it did, counted in rows, not time.

Tests of a query's cost compare the rows its plan read at two sizes, or against
the rows it should need: a count that does not drift with the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db import connection


class Plan:
    """A query's plan as it ran (EXPLAIN ANALYZE)."""

    def __init__(self, sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
            (plan,) = cursor.fetchone()
        self.root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]

    def nodes(self, node: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        node = node or self.root
        yield node
        for child in node.get("Plans", ()):
            yield from self.nodes(child)

    @property
    def rows_read(self) -> int:
        """Rows every node read, loops included."""
        return sum(node["Actual Rows"] * node["Actual Loops"] for node in self.nodes())

    @property
    def rows_examined(self) -> int:
        """Rows read, and rows a node read only to throw away, loops included."""
        thrown = ("Rows Removed by Filter", "Rows Removed by Index Recheck")
        return sum(
            (node["Actual Rows"] + sum(node.get(key, 0) for key in thrown)) * node["Actual Loops"]
            for node in self.nodes()
        )

    def __repr__(self) -> str:  # shown when an assertion fails
        return "\n".join(
            f"{node['Node Type']} {node.get('Relation Name', '')} {node.get('Index Name', '')} "
            f"rows={node['Actual Rows']} loops={node['Actual Loops']} "
            f"removed={node.get('Rows Removed by Filter', 0)}"
            for node in self.nodes()
        )
