"""The worker side: reads plate crops with the YOLO character model.

`import worker` stays cheap: `PlateReader` and `read_plate` load torch and ultralytics only
when first touched.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["PlateReader", "read_plate"]

if TYPE_CHECKING:
    from worker.compat import read_plate
    from worker.engine import PlateReader


def __getattr__(name: str) -> Any:
    if name == "PlateReader":
        from worker.engine import PlateReader

        return PlateReader
    if name == "read_plate":
        from worker.compat import read_plate

        return read_plate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
