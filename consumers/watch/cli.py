"""`plate-ocr lists add NAME --file F | remove NAME [--plate P ...] | show [NAME]`."""

from pathlib import Path

from consumers.watch.lists import WatchLists
from plate_ocr.connection import connect
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings

__all__ = ["run_lists"]


def run_lists(
    settings: Settings, action: str, name: str | None, file: Path | None, plates: list[str]
) -> int:
    lists = WatchLists(connect(settings, client_name="plate-ocr-lists"))
    if action == "show":
        for list_name in [name] if name else lists.names():
            entries = lists.entries(list_name)
            print(f"{list_name}: {len(entries)} plates")
            for e in entries:
                scope = f" camera={e.camera_id}" if e.camera_id else ""
                until = f" expires={e.expires_at.isoformat()}" if e.expires_at else ""
                print(f"  {e.plate}  {e.label}{scope}{until}")
        return 0
    if not name:
        raise ConfigError(f"plate-ocr lists {action} needs a list NAME")
    if action == "add":
        if file is None:
            raise ConfigError("plate-ocr lists add NAME needs --file plates.csv")
        print(f"{name}: {lists.add_file(name, file)} plates added or updated")
        return 0
    removed = lists.remove(name, plates)
    print(f"{name}: {removed} plates removed")
    return 0
