"""Fixtures of the consumers' tests: a PostgreSQL database of the tests' own (.ci/run starts
the server). TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres) must reach a
server where the tests may create the database `plate_ocr_test`; each test works in a schema of
its own, dropped afterwards.
"""

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

TEST_DATABASE = "plate_ocr_test"


def _server_dsn() -> str:
    return os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def test_database() -> str:
    """A DSN of the tests' own database, created once (its pg_trgm in schema public)."""
    try:
        server = psycopg.connect(_server_dsn(), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.fail(f"no PostgreSQL at {_server_dsn()}: {e}")
    with server:
        found = server.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,))
        if found.fetchone() is None:
            server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DATABASE)))
    base = psycopg.conninfo.conninfo_to_dict(_server_dsn())
    dsn = psycopg.conninfo.make_conninfo(**{**base, "dbname": TEST_DATABASE})
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    return dsn


@pytest.fixture
def dsn(test_database: str) -> Iterator[str]:
    """A DSN whose tables live in a fresh schema of this test's own (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(test_database, autocommit=True) as db:
        db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield psycopg.conninfo.make_conninfo(test_database, options=f"-csearch_path={schema},public")
    with psycopg.connect(test_database, autocommit=True) as db:
        db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
