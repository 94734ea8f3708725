"""Finding a plate in the history: "where and when was ABC123 seen", over months.

`History.find(query)` returns the readings whose plate contains the normalised query (the
dashboard's box: `abc-12` finds `ABC123`), then those pg_trgm finds similar (a misread or a
mistyped character), newest first within each; both go through the trigram GIN index, so the
cost follows the matches, not the table (bench/history.py times it on 100 000 readings).
Queries shorter than three characters have no trigram: they are matched as a prefix, on the
plate's b-tree index.
"""

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from consumers.watch.matcher import normalise_plate

__all__ = ["History"]

# pg_trgm's similarity() at or above this counts as a fuzzy match (its own default is 0.3,
# which on 6-7 character plates lets two different characters through).
FUZZY_SIMILARITY = 0.4

_FIND = """
SELECT document, plate, seen_at, camera_id, (plate LIKE %(like)s) AS contains,
       similarity(plate, %(q)s) AS similarity
FROM readings
WHERE (plate LIKE %(like)s OR (%(fuzzy)s AND plate %% %(q)s))
  AND (%(camera)s::text IS NULL OR camera_id = %(camera)s)
  AND (%(since)s::timestamptz IS NULL OR seen_at >= %(since)s)
ORDER BY contains DESC, seen_at DESC
LIMIT %(limit)s
"""
_PREFIX = """
SELECT document, plate, seen_at, camera_id, true AS contains, 1.0 AS similarity
FROM readings
WHERE plate LIKE %(like)s
  AND (%(camera)s::text IS NULL OR camera_id = %(camera)s)
  AND (%(since)s::timestamptz IS NULL OR seen_at >= %(since)s)
ORDER BY seen_at DESC
LIMIT %(limit)s
"""


class History:
    """Read-only queries on the history database (one connection, opened lazily)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: psycopg.Connection[dict[str, Any]] | None = None

    def _db(self) -> psycopg.Connection[dict[str, Any]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._dsn, row_factory=dict_row, autocommit=True)
            # pg_trgm's % operator reads its threshold from this setting.
            self._connection.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, false)",
                (str(FUZZY_SIMILARITY),),
            )
        return self._connection

    def find(
        self,
        query: str,
        *,
        camera: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
        fuzzy: bool = True,
    ) -> list[dict[str, Any]]:
        """Readings of plates containing `query` first, then similar ones; newest first."""
        q = normalise_plate(query)
        if not q:
            return []
        params = {"q": q, "camera": camera, "since": since, "limit": limit, "fuzzy": fuzzy}
        if len(q) < 3:
            rows = self._db().execute(_PREFIX, {**params, "like": q + "%"}).fetchall()
        else:
            rows = self._db().execute(_FIND, {**params, "like": f"%{q}%"}).fetchall()
        return [
            {
                "reading": row["document"],
                "match": "contains" if row["contains"] else "similar",
                "similarity": round(float(row["similarity"]), 3),
            }
            for row in rows
        ]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
