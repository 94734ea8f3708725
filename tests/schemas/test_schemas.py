import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import schemas
from plate_ocr.cli import main
from schemas import (
    SCHEMA_VERSION,
    CharacterReading,
    DetectorBox,
    ErrorCode,
    ModelInfo,
    PlateJob,
    PlateReading,
    ReadingError,
    Timings,
    json_schemas,
    reading_id_for,
)
from schemas.job import MAX_METADATA_BYTES_CEILING

MODEL = ModelInfo(name="yolo11n-chars", sha256="ab" * 32)
TIMINGS = Timings(queue_wait_ms=3.5, decode_ms=0.25, infer_ms=1.125, total_ms=6.0)


def full_job() -> PlateJob:
    return PlateJob(
        job_id="cam3_000123",
        image_b64=bytes(range(256)),  # every byte value, not just text-safe ones
        camera_id="gate-3",
        captured_at=datetime(2026, 11, 25, 14, 0, 0, 123456, tzinfo=UTC),
        box=DetectorBox(x1=10.5, y1=20, x2=110, y2=60, confidence=0.93),
        track_id="track-7",
        metadata={"lane": 2, "tags": ["night", "rain"], "speed_kmh": 42.5},
    )


def full_reading(**fields: Any) -> PlateReading:
    values: dict[str, Any] = {
        "job_id": "cam3_000123",
        "reading_id": reading_id_for("cam3_000123", MODEL.sha256),
        "status": "ok",
        "text": "7ABC123",
        "confidence": 0.875,
        "characters": (
            CharacterReading(char="7", confidence=0.875, box=(1.0, 2.0, 9.5, 20.0), row=0),
            CharacterReading(char="A", confidence=0.99, box=(10.0, 2.0, 18.5, 20.0), row=0),
        ),
        "rows": 1,
        "model": MODEL,
        "device": "cuda:0",
        "worker_id": "worker-gpu0",
        "camera_id": "gate-3",
        "metadata": {"lane": 2},
        "timings": TIMINGS,
    }
    values.update(fields)
    return PlateReading(**values)


# --- round trips -------------------------------------------------------------------------------


def test_a_job_round_trips_through_json_exactly() -> None:
    job = full_job()
    assert PlateJob.model_validate_json(job.model_dump_json()) == job


def test_a_job_round_trips_through_the_rq_argument_exactly() -> None:
    job = full_job()
    argument = json.loads(json.dumps(job.model_dump(mode="json")))  # what RQ's JSON stores
    assert PlateJob.model_validate(argument) == job
    assert isinstance(argument["image_b64"], str)  # base64 text on the wire


def test_readings_round_trip_through_json_exactly() -> None:
    error = ReadingError(code=ErrorCode.UNDECODABLE_IMAGE, message="not an image")
    for reading in (
        full_reading(),
        full_reading(status="error", text="", confidence=0.0, characters=(), rows=0, error=error),
    ):
        assert PlateReading.model_validate_json(reading.model_dump_json()) == reading


# --- strictness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (PlateJob, {"image_ref": "file:///a.jpg", "priority": 1}),
        (DetectorBox, {"x1": 0, "y1": 0, "x2": 1, "y2": 1, "angle": 3}),
        (CharacterReading, {"char": "A", "confidence": 1, "box": [0, 0, 1, 1], "row": 0, "x": 1}),
    ],
)
def test_unknown_fields_are_rejected(model: type[Any], document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(document)


def test_an_unknown_field_in_a_reading_is_rejected() -> None:
    document = json.loads(full_reading().model_dump_json()) | {"plate_colour": "blue"}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PlateReading.model_validate(document)


def test_a_job_needs_exactly_one_image() -> None:
    with pytest.raises(ValidationError, match="exactly one of image_b64 and image_ref"):
        PlateJob()
    with pytest.raises(ValidationError, match="exactly one of image_b64 and image_ref"):
        PlateJob(image_b64=b"img", image_ref="file:///a.jpg")
    assert PlateJob(image_ref="redis://plate-ocr:image:1").image_b64 is None


def test_an_image_reference_must_be_a_file_or_redis_url() -> None:
    with pytest.raises(ValidationError):
        PlateJob(image_ref="https://example.com/a.jpg")


def test_invalid_base64_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="not valid base64"):
        PlateJob.model_validate({"image_b64": "not base64!!"})


@pytest.mark.parametrize("job_id", ["", "has space", "a:b", "a/b", "x" * 129])
def test_job_ids_are_limited_to_what_rq_accepts(job_id: str) -> None:
    with pytest.raises(ValidationError):
        PlateJob(job_id=job_id, image_b64=b"img")


def test_job_ids_are_fresh_by_default() -> None:
    assert PlateJob(image_b64=b"a").job_id != PlateJob(image_b64=b"a").job_id


def test_metadata_is_bounded_by_the_ceiling() -> None:
    just_fits = {"k": "x" * (MAX_METADATA_BYTES_CEILING - len('{"k":""}'))}
    assert (
        PlateJob(image_b64=b"a", metadata=just_fits).metadata_bytes() == MAX_METADATA_BYTES_CEILING
    )
    with pytest.raises(ValidationError, match="metadata is"):
        PlateJob(image_b64=b"a", metadata={"k": "x" * MAX_METADATA_BYTES_CEILING})


def test_an_incompatible_schema_version_is_rejected_and_a_minor_bump_accepted() -> None:
    major = SCHEMA_VERSION.split(".")[0]
    assert PlateJob(image_b64=b"a", schema_version=f"{major}.99").schema_version == f"{major}.99"
    with pytest.raises(ValidationError, match="not compatible"):
        PlateJob(image_b64=b"a", schema_version=f"{int(major) + 1}.0")


def test_a_reading_has_an_error_exactly_when_its_status_is_error() -> None:
    with pytest.raises(ValidationError):
        full_reading(status="error")
    with pytest.raises(ValidationError):
        full_reading(error=ReadingError(code=ErrorCode.INFERENCE_FAILED, message="boom"))


def test_reading_ids_are_stable_per_job_and_model() -> None:
    assert reading_id_for("j1", MODEL.sha256) == reading_id_for("j1", MODEL.sha256)
    assert reading_id_for("j1", MODEL.sha256) != reading_id_for("j2", MODEL.sha256)
    assert reading_id_for("j1", MODEL.sha256) != reading_id_for("j1", "cd" * 32)


def test_the_public_names_are_pinned() -> None:
    assert sorted(schemas.__all__) == sorted(
        [
            "SCHEMA_VERSION",
            "Candidate",
            "CharacterReading",
            "DetectorBox",
            "ErrorCode",
            "EventCandidate",
            "EventCharacter",
            "ModelInfo",
            "PlateEvent",
            "PlateJob",
            "PlateReading",
            "ReadingError",
            "Timings",
            "event_id_for",
            "json_schema",
            "json_schemas",
            "reading_id_for",
            # watch-list alerts (plate-ocr watch)
            "AlertMatch",
            "PlateAlert",
            "WatchEntry",
            "alert_id_for",
        ]
    )
    for name in schemas.__all__:
        assert hasattr(schemas, name)


# --- `plate-ocr schema` ------------------------------------------------------------------------


def test_plate_ocr_schema_prints_both_json_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(json_schemas()))
    models = printed["$defs"]
    assert {"PlateJob", "PlateReading", "PlateEvent"} <= set(models)
    assert models["PlateJob"]["additionalProperties"] is False
    assert "image_b64" in models["PlateJob"]["properties"]
    assert "reading_id" in models["PlateReading"]["required"]


def test_plate_ocr_schema_model_prints_one_models_own_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "--model", "PlateReading"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$id"].endswith(":PlateReading") and printed["title"] == "PlateReading"
    assert main(["schema", "--model", "Nope"]) == 2
    assert "PlateJob" in capsys.readouterr().err


def test_plate_ocr_schema_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(json.dumps(json_schemas()))


# --- PlateEvent --------------------------------------------------------------------------------


def test_an_event_id_depends_on_camera_track_and_first_reading_only() -> None:
    assert schemas.event_id_for("c", "t", "r1") == schemas.event_id_for("c", "t", "r1")
    others = {("c", "t", "r2"), ("c2", "t", "r1"), ("c", "t2", "r1"), (None, "t", "r1")}
    assert schemas.event_id_for("c", "t", "r1") not in {schemas.event_id_for(*o) for o in others}


def test_an_event_is_versioned_and_round_trips_through_json() -> None:
    event = schemas.PlateEvent(
        event_id="e1",
        camera_id="gate-3",
        track_id="car-1",
        text="ABC123",
        confidence=0.7,
        characters=tuple(schemas.EventCharacter(char=c, confidence=0.7) for c in "ABC123"),
        candidates=(schemas.EventCandidate(text="ABC123", score=0.8, reads=3),),
        reads=4,
        agreeing_reads=3,
        best_reading_id="r1",
        best_job_id="j1",
        reading_ids=("r1", "r2", "r3", "r4"),
        first_seen=datetime(2026, 1, 1, tzinfo=UTC),
        last_seen=datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC),
        closed_by="idle",
    )
    assert event.schema_version == SCHEMA_VERSION
    assert schemas.PlateEvent.model_validate_json(event.model_dump_json()) == event
    assert "agreeing_reads" in json_schemas()["$defs"]["PlateEvent"]["properties"]  # type: ignore[index]
    with pytest.raises(ValidationError):
        schemas.PlateEvent.model_validate({**event.model_dump(), "closed_by": "whenever"})
