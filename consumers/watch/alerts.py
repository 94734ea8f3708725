"""Publishing alerts on `settings.alerts_stream`, once per reading (or event) and list entry.

One script sets the alert's published marker (NX, kept PUBLISHED_TTL_S) and appends the entry:
a watcher killed after it ran and before acknowledging the reading is handed the reading again
and publishes nothing twice; one killed before it leaves nothing to undo.
"""

from typing import cast

import redis

from plate_ocr.constants import ALERT_PUBLISHED_KEY_PREFIX, PUBLISHED_TTL_S
from plate_ocr.settings import Settings
from schemas import PlateAlert

__all__ = ["AlertPublisher", "alert_fields", "parse_alert"]

# ARGV: marker key, marker TTL s, stream, approximate MAXLEN, then the entry's field/value pairs.
_PUBLISH = """
if redis.call('SET', ARGV[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', ARGV[3], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
  return 1
end
return 0
"""


def alert_fields(alert: PlateAlert) -> dict[str, str]:
    """The stream entry: the JSON, plus flat copies to filter on without parsing it."""
    return {
        "alert": alert.model_dump_json(),
        "alert_id": alert.alert_id,
        "watch_list": alert.watch_list,
        "plate": alert.entry.plate,
        "camera_id": alert.camera_id or "",
        "score": repr(alert.score),
    }


def parse_alert(fields: dict[bytes, bytes]) -> PlateAlert:
    return PlateAlert.model_validate_json(fields[b"alert"])


class AlertPublisher:
    def __init__(self, settings: Settings, connection: "redis.Redis") -> None:
        self._stream = settings.alerts_stream
        self._maxlen = settings.stream_maxlen
        self._script = connection.register_script(_PUBLISH)

    def publish(self, alert: PlateAlert) -> bool:
        """True if this call published it, False if it had been already."""
        args: list[str | int] = [
            f"{ALERT_PUBLISHED_KEY_PREFIX}{self._stream}:{alert.alert_id}",
            PUBLISHED_TTL_S,
            self._stream,
            self._maxlen,
        ]
        for key, value in alert_fields(alert).items():
            args += [key, value]
        return bool(cast(int, self._script(args=args)))
