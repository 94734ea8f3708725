"""Which models each reader loads (reader.stages), on the bundled files."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from plate_ocr.errors import ConfigError
from reader.detector import LIGHT_BACKEND
from reader.fast_reader import INPUT_HW
from reader.locator import Locator
from reader.stages import Stages, load_stages
from reader.two_stage import ReaderKind


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _load(
    pool: ThreadPoolExecutor,
    reader: ReaderKind,
    locator: Locator | None,
    *,
    cascade: bool = False,
    **overrides: Any,
) -> Stages:
    arguments: dict[str, Any] = {
        "naive": False,
        "device": "cpu",
        "model_path": None,
        "backend": "auto",
        "calibration": None,
        "imgsz": 256,
        "input_hw": None,
        "max_batch": 8,
        "cache_dir": None,
        "threads": 1,
        "spinning": False,
        "recogniser_path": None,
        "fast_reader_path": None,
    }
    arguments.update(overrides)
    return load_stages(reader=reader, locator=locator, cascade=cascade, pool=pool, **arguments)


@pytest.mark.parametrize(
    ("reader", "locator", "cascade", "loaded"),
    [
        ("fused", "detector", False, {"detector", "recogniser"}),
        ("fused", "detector", True, {"detector", "recogniser", "fast"}),
        ("fused", "fast", False, {"fast", "recogniser"}),
        ("detector", None, False, {"detector"}),
        ("fast", None, False, {"fast"}),
    ],
)
def test_each_reader_loads_only_what_it_reads_with(
    pool: ThreadPoolExecutor,
    reader: ReaderKind,
    locator: Locator | None,
    cascade: bool,
    loaded: set[str],
) -> None:
    stages = _load(pool, reader, locator, cascade=cascade)
    models = {"detector": stages.detector, "recogniser": stages.recogniser, "fast": stages.fast}
    assert {name for name, model in models.items() if model is not None} == loaded
    first = stages.detector if stages.detector is not None else stages.fast
    assert first is not None and stages.model_info == first.model_info
    if stages.detector is None:  # the fast reader's input and no detector runtime
        assert stages.backend == LIGHT_BACKEND and stages.input_hw == INPUT_HW
        assert stages.detector_batch == 0


def test_the_detectors_own_reading_is_loaded_for_all_its_views(pool: ThreadPoolExecutor) -> None:
    own = _load(pool, "detector", None)
    fused = _load(pool, "fused", "detector")
    assert own.detector_batch == 8 * len(own.calibration.views) > fused.detector_batch == 8


def test_what_would_read_otherwise_than_asked_is_refused(pool: ThreadPoolExecutor) -> None:
    with pytest.raises(ConfigError, match="reads without"):
        _load(pool, "fast", None, backend="torch")
    with pytest.raises(ConfigError, match="CPU only"):
        _load(pool, "fused", "fast", device="cuda:0")
