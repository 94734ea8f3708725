"""reader.locator: what finds the serial for the fused reader's recogniser."""

from pathlib import Path

import pytest

from plate_ocr.errors import ConfigError
from reader.locator import choose_locator


def test_the_fused_reader_locates_as_asked_and_other_readers_need_nothing() -> None:
    for locator in ("detector", "fast"):
        chosen = choose_locator(locator, reader="fused", naive=False, model_path=None)
        assert chosen == locator
    assert choose_locator("detector", reader="fused", naive=False, model_path=Path("w.pt")) == (
        "detector"
    )
    for reader in ("detector", "fast"):
        assert choose_locator("fast", reader=reader, naive=False, model_path=None) is None
    assert choose_locator("fast", reader="fused", naive=True, model_path=None) is None


def test_weights_given_with_the_fast_locator_or_an_unknown_locator_are_refused() -> None:
    # Weights given are a detector to locate with: reading without them would ignore them.
    with pytest.raises(ConfigError, match="locate with the detector"):
        choose_locator("fast", reader="fused", naive=False, model_path=Path("w.pt"))
    with pytest.raises(ConfigError, match="locator must be one of"):
        choose_locator("auto", reader="fused", naive=False, model_path=None)  # type: ignore[arg-type]
