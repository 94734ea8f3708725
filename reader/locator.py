"""What locates the serial for the fused reader's line recogniser: the detector or the fast reader.

The recogniser reads the serial's line; something must find that line first. By default the
character detector does (YOLO11n, the fused reader's first stage since issue 9); `fast` hands that
to the fast reader (reader.fast_reader), which reads the serial row's characters with their
columns and the row's height in about a tenth of the detector's time, and loads no detector at
all. On the dev set it reads 0.3 points fewer plates exactly for 1.6x the plates a second on
this CPU (reader/models/MODEL_CARD.md), so it is a choice (`PLATE_OCR_LOCATOR=fast`), not the
default. It needs the CPU (the fast reader runs on ONNX Runtime's CPU provider) and the bundled
detector's place: weights given by path are a detector to locate with.
"""

from pathlib import Path
from typing import Final, Literal

from plate_ocr.errors import ConfigError

__all__ = ["FAST_LOCATED", "FAST_MARGIN_X", "LOCATORS", "Locator", "choose_locator"]

Locator = Literal["detector", "fast"]
LOCATORS: Final[tuple[Locator, ...]] = ("detector", "fast")
# The calibration's name for the fused reader located by the fast reader (reader.calibration):
# its features (how often the two readers agree, say) are not the detector-located reader's.
FAST_LOCATED: Final = "fused_fast"  # one of reader.calibration.FAST_READERS
# The serial region's margin left and right, in character heights, when the fast reader
# locates it (reader.fusion.layout; the detector's is 0.15). The fast reader misses an end
# character more often than the detector, and the recogniser reads only what the region holds.
# On the dev set (chosen there, with the shipped fast reader, recogniser weight 0.8):
# 0.15 / 0.5 / 0.8 / 1.2 read 89.6 / 91.7 / 91.8 / 91.1% exactly.
FAST_MARGIN_X: Final = 0.8


def choose_locator(
    locator: Locator, *, reader: str, naive: bool, model_path: Path | None
) -> Locator | None:
    """The fused reader's locator (None for the other readers, which need none)."""
    if locator not in LOCATORS:
        raise ConfigError(f"locator must be one of {', '.join(LOCATORS)}, not {locator!r}")
    if reader != "fused" or naive:
        return None
    if locator == "fast" and model_path is not None:
        raise ConfigError(
            f"detector weights {model_path} were given, but the fast reader locates the serial "
            "(locator fast): drop one, or locate with the detector"
        )
    return locator
