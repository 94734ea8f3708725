"""The history's tables, made and upgraded in order (`migrate`), each step once.

`plate_ocr_migrations` records the steps applied; `migrate` takes an advisory lock, so stores
started side by side upgrade once. Plates are kept normalised (`plate`: 0-9A-Z, O as 0, as the
watch matcher and `plate-ocr eval` compare them) beside the whole document (`jsonb`). Indices:
time, camera and time, plate (equality and prefix), and a pg_trgm GIN index on the plate for
substring (`LIKE '%BC12%'`) and fuzzy (`%`, similarity) search. pg_trgm ships with PostgreSQL;
the first migration creates it (which needs the right to, once per database).
"""

import psycopg

__all__ = ["MIGRATIONS", "migrate"]

_LOCK_ID = 0x504C4F43  # "PLOC": pg_advisory_xact_lock key of the migrations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE readings (
        reading_id text PRIMARY KEY,
        job_id text NOT NULL,
        seen_at timestamptz NOT NULL,
        camera_id text,
        track_id text,
        status text NOT NULL,
        plate text NOT NULL,
        confidence real NOT NULL,
        error_code text,
        document jsonb NOT NULL
    );
    CREATE INDEX readings_seen_at ON readings (seen_at);
    CREATE INDEX readings_camera_seen_at ON readings (camera_id, seen_at);
    CREATE INDEX readings_plate ON readings (plate text_pattern_ops);
    CREATE INDEX readings_plate_trgm ON readings USING gin (plate gin_trgm_ops);
    CREATE TABLE events (
        event_id text PRIMARY KEY,
        seen_at timestamptz NOT NULL,
        first_seen timestamptz NOT NULL,
        camera_id text,
        track_id text,
        plate text NOT NULL,
        confidence real NOT NULL,
        reads integer NOT NULL,
        best_reading_id text NOT NULL,
        best_job_id text NOT NULL,
        document jsonb NOT NULL
    );
    CREATE INDEX events_seen_at ON events (seen_at);
    CREATE INDEX events_camera_seen_at ON events (camera_id, seen_at);
    CREATE INDEX events_plate ON events (plate text_pattern_ops);
    CREATE INDEX events_plate_trgm ON events USING gin (plate gin_trgm_ops);
    """,
)


def migrate(connection: psycopg.Connection) -> int:
    """Apply the steps not applied yet; returns how many were."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS plate_ocr_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = connection.execute("SELECT max(version) FROM plate_ocr_migrations").fetchone()
        done = row[0] if row is not None and row[0] is not None else 0
        for version, sql in enumerate(MIGRATIONS[done:], start=done + 1):
            connection.execute(sql.encode())
            connection.execute("INSERT INTO plate_ocr_migrations (version) VALUES (%s)", (version,))
    return len(MIGRATIONS) - done
