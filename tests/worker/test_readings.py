"""worker.readings: a reading names the models that read its crop, and its id the worker's."""

from datetime import UTC, datetime

from reader.postprocess import OcrResult
from schemas.reading import ModelInfo, PlateReading
from worker.intake import Envelope
from worker.readings import ReadingFactory, reading_id_of

DETECTOR = ModelInfo(name="detector", sha256="a" * 64)
RECOGNISER = ModelInfo(name="recogniser", sha256="b" * 64)
FAST = ModelInfo(name="fast", sha256="c" * 64)
ENVELOPE = Envelope(job_id="job-1", camera_id="cam", metadata={})


def _ok(factory: ReadingFactory, result: OcrResult) -> PlateReading:
    return factory.ok(
        ENVELOPE,
        result,
        enqueued_at=None,
        taken_at=datetime.now(UTC),
        decode_ms=1.0,
        infer_ms=2.0,
    )


def test_a_reading_names_the_models_that_read_it() -> None:
    factory = ReadingFactory(DETECTOR, "cpu", "w", recogniser=RECOGNISER, fast=FAST)
    two_stage = OcrResult(text="ABC123", confidence=0.9, characters=(), rows=1)
    by_fast = OcrResult(text="ABC123", confidence=0.99, characters=(), rows=1, models=(FAST, None))
    slow, quick = _ok(factory, two_stage), _ok(factory, by_fast)
    assert (slow.model, slow.recogniser) == (DETECTOR, RECOGNISER)
    assert (quick.model, quick.recogniser) == (FAST, None)
    # One job, one worker: one reading id, whichever of its models read the crop.
    assert slow.reading_id == quick.reading_id


def test_reading_ids_change_with_any_of_the_worker_models() -> None:
    def id_with(recogniser: ModelInfo | None = None, fast: ModelInfo | None = None) -> str:
        return ReadingFactory(DETECTOR, "cpu", "w", recogniser=recogniser, fast=fast).models_sha256

    alone = id_with()
    fused = id_with(recogniser=RECOGNISER)
    cascade = id_with(recogniser=RECOGNISER, fast=FAST)
    other_fast = id_with(recogniser=RECOGNISER, fast=ModelInfo(name="fast", sha256="d" * 64))
    assert len({alone, fused, cascade, other_fast}) == 4
    assert alone == DETECTOR.sha256
    assert reading_id_of("job-1", cascade, 0) != reading_id_of("job-1", fused, 0)
