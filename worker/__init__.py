"""The queue runtime: batching workers that take plate jobs from Redis and publish readings.

The reading itself lives in `reader`. `from worker import PlateReader, read_plate` keeps working
for code written before the engine had its own package: both are re-exported from `reader`, and
loaded only when first touched, so `import worker` stays cheap.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["PlateReader", "read_plate"]

if TYPE_CHECKING:
    from reader import PlateReader, read_plate


def __getattr__(name: str) -> Any:
    if name in __all__:
        import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
