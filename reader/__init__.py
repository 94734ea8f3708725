"""The reading engine: plate crops in, readings out, with no Redis anywhere.

`PlateReader` (reader.engine) runs the two stages, the YOLO11n character detector and the line
recogniser, and fuses them; `read_plate` (reader.compat) is the seed model's API. The queue runtime
(`worker`), `training/` and `bench/` all read plates through this package.

`import reader` stays cheap: `PlateReader` and `read_plate` load the model stack only when first
touched.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["PlateReader", "read_plate"]

if TYPE_CHECKING:
    from reader.compat import read_plate
    from reader.engine import PlateReader


def __getattr__(name: str) -> Any:
    if name == "PlateReader":
        from reader.engine import PlateReader

        return PlateReader
    if name == "read_plate":
        from reader.compat import read_plate

        return read_plate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
