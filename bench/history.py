"""Finding a plate in a 100,000-reading history: the search the dashboard runs, timed.

    python bench/history.py [--dsn postgresql://postgres@127.0.0.1:5432/plate_ocr_test]
        [--readings 100000] [--repeat 30]

Fills a fresh schema (dropped afterwards) with `--readings` readings over 90 days and 20
cameras, plates drawn from common US serial formats (about 10 readings per plate), written the
way `plate-ocr store` writes them, then times `History.find` (consumers/history/search.py) and
the dashboard's `GET /api/readings?q=` on top of it (in-process ASGI, the same code the page
calls): an exact plate, a part of one, and a misread of one (fuzzy). Prints the median and the
95th percentile of `--repeat` runs each.
"""

import argparse
import random
import statistics
import string
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from psycopg import sql

from consumers.history.migrations import migrate
from consumers.history.search import History
from consumers.watch.matcher import normalise_plate
from schemas import CharacterReading, ModelInfo, PlateReading, Timings

__all__ = ["fill", "main"]

_FORMATS = ("DLLLDDD", "LLLDDDD", "DDDLLL", "LLDDDDD", "DLLDDD", "LLLDDD")


def _plate(rng: random.Random) -> str:
    fmt = rng.choice(_FORMATS)
    return "".join(
        rng.choice(string.digits) if c == "D" else rng.choice(string.ascii_uppercase) for c in fmt
    )


_MODEL = ModelInfo(name="plate_ocr_yolo11n", sha256="0" * 64)
_TIMINGS = Timings(queue_wait_ms=3.0, decode_ms=0.4, infer_ms=9.0, total_ms=14.0)


def _reading(reading_id: str, job_id: str, plate: str, camera: str, seen: datetime) -> PlateReading:
    """A whole reading, as the worker publishes it and `plate-ocr store` keeps it."""
    characters = [
        CharacterReading(char=c, confidence=0.9, box=(10.0 * i, 5.0, 10.0 * i + 9, 40.0), row=0)
        for i, c in enumerate(plate)
    ]
    return PlateReading(
        job_id=job_id,
        reading_id=reading_id,
        status="ok",
        text=plate,
        confidence=0.9,
        characters=characters,
        rows=1,
        model=_MODEL,
        device="cpu",
        worker_id="bench",
        camera_id=camera,
        timings=_TIMINGS,
        created_at=seen,
    )


def fill(db: psycopg.Connection, count: int, rng: random.Random) -> list[str]:
    """`count` readings into the current schema's tables; returns the plates used."""
    plates = [normalise_plate(_plate(rng)) for _ in range(max(count // 10, 1))]
    start = datetime.now(UTC) - timedelta(days=90)
    columns = "reading_id, job_id, seen_at, camera_id, status, plate, confidence, document"
    with db.cursor() as cursor, cursor.copy(f"COPY readings ({columns}) FROM STDIN") as copy:
        for i in range(count):
            plate = rng.choice(plates)
            seen = start + timedelta(seconds=rng.uniform(0, 90 * 86400))
            camera = f"cam-{rng.randrange(20)}"
            reading_id = str(uuid.UUID(int=rng.getrandbits(128)))
            document = _reading(reading_id, f"j{i}", plate, camera, seen).model_dump_json()
            copy.write_row((reading_id, f"j{i}", seen, camera, "ok", plate, 0.9, document))
    db.commit()
    db.execute("ANALYZE readings")
    db.commit()
    return plates


def _timed(call: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    call()  # warm: the first query plans and loads pages
    times = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/plate_ocr_test")
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    dsn = psycopg.conninfo.make_conninfo(args.dsn, options=f"-csearch_path={schema},public")
    try:
        with psycopg.connect(dsn) as db:
            migrate(db)
            started = time.perf_counter()
            plates = fill(db, args.readings, rng)
            filled_s = time.perf_counter() - started
        target = plates[0]
        misread = target[:-2] + ("8" if target[-2] != "8" else "B") + target[-1]
        history = History(dsn)
        rows = _dashboard_rows(dsn)
        print(
            f"{args.readings} readings of {len(plates)} plates over 90 days, 20 cameras "
            f"(filled in {filled_s:.1f} s); {args.repeat} runs each, ms"
        )
        print(f"{'query':<42} {'median':>8} {'p95':>8} {'found':>6}")
        for name, query in (
            (f"exact plate {target}", target),
            (f"part of it {target[1:5]}", target[1:5]),
            (f"a misread {misread} (fuzzy)", misread),
        ):
            median, p95, found = _timed(lambda q=query: history.find(q), args.repeat)
            print(f"{'History.find ' + name:<42} {median:>8.1f} {p95:>8.1f} {len(found):>6}")  # type: ignore[arg-type]
            median, p95, found = _timed(lambda q=query: rows(q), args.repeat)
            print(f"{'GET /api/readings ' + name:<42} {median:>8.1f} {p95:>8.1f} {found:>6}")
        history.close()
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return 0


def _dashboard_rows(dsn: str) -> Callable[[str], int]:
    """`GET /api/readings?q=` of a dashboard configured with the history, in process."""
    import fakeredis
    from starlette.testclient import TestClient

    from consumers.dashboard.app import create_app
    from plate_ocr.settings import Settings

    settings = Settings(history_dsn=dsn)
    client = TestClient(create_app(settings, connection=fakeredis.FakeRedis()))
    client.base_url = "http://127.0.0.1:8080"  # type: ignore[assignment]

    def rows(query: str) -> int:
        answer = client.get("/api/readings", params={"q": query})
        answer.raise_for_status()
        return len(answer.json()["readings"])

    return rows


if __name__ == "__main__":
    sys.exit(main())
