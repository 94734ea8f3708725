"""Watch lists in Redis (`plate-ocr lists add|remove|show`), changed while watchers run.

Layout (plate_ocr/constants.py): the set `WATCH_LISTS_KEY` names the lists; each list is a hash
`WATCH_LIST_KEY_PREFIX + name` from normalised plate to its `WatchEntry` as JSON; every change
bumps `WATCH_VERSION_KEY` in the same transaction, and a watcher reloads when it moves (one GET
per batch of readings), so a change applies from the next batch on.

A list file is CSV: `plate,label[,camera][,expires]`, a header row optional; `camera` scopes
the entry to one camera, `expires` (ISO 8601 date or date-time, UTC unless it says otherwise;
a date means the end of that day) ends it.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import cast

import redis
from pydantic import ValidationError

from consumers.watch.matcher import normalise_plate
from plate_ocr.constants import WATCH_LIST_KEY_PREFIX, WATCH_LISTS_KEY, WATCH_VERSION_KEY
from plate_ocr.errors import ConfigError
from schemas import WatchEntry

__all__ = ["WatchLists", "parse_list_csv"]

_HEADER = ("plate", "label", "camera", "expires")


def _expiry(text: str, where: str) -> datetime | None:
    if not text:
        return None
    try:
        if "T" not in text and " " not in text and len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"{where}: expires {text!r} is not an ISO 8601 date or time") from e
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_list_csv(text: str, *, source: str = "list") -> list[WatchEntry]:
    """The entries of a list file; a bad row is an error naming its line, nothing half-loaded."""
    entries: list[WatchEntry] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and tuple(c.lower() for c in cells[: len(_HEADER)]) == _HEADER[: len(cells)]:
            continue
        where = f"{source} line {number}"
        if len(cells) > len(_HEADER):
            raise ConfigError(f"{where}: expected plate,label[,camera][,expires], got {row}")
        cells += [""] * (len(_HEADER) - len(cells))
        plate = normalise_plate(cells[0])
        if not plate:
            raise ConfigError(f"{where}: no plate (0-9 A-Z) in {cells[0]!r}")
        try:
            entries.append(
                WatchEntry(
                    plate=plate,
                    label=cells[1],
                    camera_id=cells[2] or None,
                    expires_at=_expiry(cells[3], where),
                )
            )
        except ValidationError as e:
            raise ConfigError(f"{where}: {e}") from e
    return entries


class WatchLists:
    """The watch lists of one Redis."""

    def __init__(self, connection: "redis.Redis") -> None:
        self._redis = connection

    def add(self, name: str, entries: Iterable[WatchEntry]) -> int:
        """Add (or replace, plate by plate) entries of list `name`; returns how many."""
        if not name or any(c.isspace() for c in name):
            raise ConfigError(f"a list name is one word, not {name!r}")
        mapping = {e.plate: e.model_dump_json() for e in entries}
        if not mapping:
            raise ConfigError(f"no entries to add to list {name!r}")
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(WATCH_LIST_KEY_PREFIX + name, mapping=mapping)  # type: ignore[arg-type]
            pipe.sadd(WATCH_LISTS_KEY, name)
            pipe.incr(WATCH_VERSION_KEY)
            pipe.execute()
        return len(mapping)

    def add_file(self, name: str, path: Path) -> int:
        if not path.is_file():
            raise ConfigError(f"list file {path} not found")
        return self.add(name, parse_list_csv(path.read_text(encoding="utf-8"), source=str(path)))

    def remove(self, name: str, plates: Sequence[str] = ()) -> int:
        """Remove these plates from list `name` (none given: the whole list); returns how many
        entries went."""
        key = WATCH_LIST_KEY_PREFIX + name
        with self._redis.pipeline(transaction=True) as pipe:
            if plates:
                pipe.hdel(key, *[normalise_plate(p) for p in plates])
            else:
                pipe.hlen(key)
                pipe.delete(key)
                pipe.srem(WATCH_LISTS_KEY, name)
            pipe.incr(WATCH_VERSION_KEY)
            removed = int(pipe.execute()[0])
        if plates and not self._redis.exists(key):
            self._redis.srem(WATCH_LISTS_KEY, name)
        return removed

    def version(self) -> int:
        value = self._redis.get(WATCH_VERSION_KEY)
        return int(cast(bytes, value)) if value is not None else 0

    def names(self) -> list[str]:
        return sorted(n.decode() for n in cast(set[bytes], self._redis.smembers(WATCH_LISTS_KEY)))

    def entries(self, name: str) -> list[WatchEntry]:
        raw = cast(dict[bytes, bytes], self._redis.hgetall(WATCH_LIST_KEY_PREFIX + name))
        return sorted(
            (WatchEntry.model_validate_json(v) for v in raw.values()), key=lambda e: e.plate
        )

    def load(self) -> tuple[int, dict[str, list[WatchEntry]]]:
        """Every list with its entries, and the version they are of (read in one transaction)."""
        names = self.names()
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(WATCH_VERSION_KEY)
            for name in names:
                pipe.hgetall(WATCH_LIST_KEY_PREFIX + name)
            version, *hashes = pipe.execute()
        lists = {
            name: [WatchEntry.model_validate_json(v) for v in h.values()]
            for name, h in zip(names, hashes, strict=True)
        }
        return (int(version) if version is not None else 0), lists
