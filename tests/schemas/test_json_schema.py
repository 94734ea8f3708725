"""The JSON Schema, checked with `jsonschema` against real jobs and readings and against documents
that the models refuse: a foreign client validating with it accepts exactly what we accept."""

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import redis
import rq
from pydantic import BaseModel, ValidationError
from rq.serializers import JSONSerializer

from plate_ocr.settings import Settings
from plate_ocr.stream import ReadingStream
from producer import PlateProducer
from schemas import PlateJob, PlateReading
from schemas.json_schema import CONTRACT_MODELS, DIALECT, json_schema, json_schemas

MakeReading = Callable[..., PlateReading]


def validator(document: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def test_every_schema_document_names_its_dialect_and_its_id_and_is_a_valid_schema() -> None:
    documents = [json_schemas(), *(json_schema(model) for model, _ in CONTRACT_MODELS)]
    for document in documents:
        assert document["$schema"] == DIALECT
        assert document["$id"].startswith("urn:plate-ocr-stream:schema:1:")
        validator(document)
    assert len({d["$id"] for d in documents}) == len(documents)


@pytest.mark.parametrize(("model", "mode"), CONTRACT_MODELS)
def test_the_schema_follows_the_model_field_for_field(model: type[BaseModel], mode: str) -> None:
    # Generated from the model: a field added to it is in the schema with no other change.
    schema = json_schema(model)
    assert set(schema["properties"]) == set(model.model_fields)
    if mode == "serialization":  # what we write always carries every field
        assert set(schema["required"]) == set(model.model_fields)


def test_validating_against_the_contract_file_is_not_a_no_op(
    make_reading: MakeReading,
) -> None:
    contract = validator(json_schemas())
    reading = json.loads(make_reading("job-1").model_dump_json())
    contract.validate(reading)
    for not_ours in ({}, {"anything": 1}, [], "text", {**reading, "extra": 1}):
        assert not contract.is_valid(not_ours), not_ours


def mutations_of_a_reading(ok: dict[str, Any], error: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def changed(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return {**copy.deepcopy(base), **fields}

    def without(base: dict[str, Any], field: str) -> dict[str, Any]:
        return {k: v for k, v in base.items() if k != field}

    char = ok["characters"][0]
    return {
        "ok with an error": changed(ok, error=error["error"]),
        "error without an error": changed(error, error=None),
        "error missing its error": without(error, "error"),
        "lower-case char": changed(ok, characters=[{**char, "char": "a"}]),
        "two-letter char": changed(ok, characters=[{**char, "char": "AB"}]),
        "next major version": changed(ok, schema_version="2.0"),
        "not a version": changed(ok, schema_version="latest"),
        "confidence over 1": changed(ok, confidence=1.5),
        "unknown status": changed(ok, status="maybe"),
        "unknown error code": changed(error, error={"code": "oops", "message": "?"}),
        "an unknown field": changed(ok, plate="ABC"),
        "no timings": without(ok, "timings"),
        "no job_id": without(ok, "job_id"),
    }


def test_readings_the_models_refuse_the_schema_refuses_too(make_reading: MakeReading) -> None:
    schema = validator(json_schema(PlateReading))
    ok = json.loads(make_reading("job-ok").model_dump_json())
    ok["characters"] = [{"char": "7", "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0], "row": 0}]
    error = json.loads(make_reading("job-bad", status="error").model_dump_json())
    schema.validate(ok)
    schema.validate(error)
    PlateReading.model_validate(ok)
    for what, document in mutations_of_a_reading(ok, error).items():
        assert not schema.is_valid(document), what
        with pytest.raises(ValidationError):
            PlateReading.model_validate_json(json.dumps(document))


def test_jobs_the_models_refuse_the_schema_refuses_too() -> None:
    schema = validator(json_schema(PlateJob))
    job = json.loads(PlateJob(image_ref="redis://k").model_dump_json())
    schema.validate(job)
    schema.validate({"image_b64": "aGVsbG8="})  # what a foreign producer minimally writes
    refused = {
        "two images": {**job, "image_b64": "aGVsbG8="},
        "no image": {**job, "image_ref": None},
        "next major version": {**job, "schema_version": "2.0"},
        "a bad job id": {**job, "job_id": "a b"},
    }
    for what, document in refused.items():
        assert not schema.is_valid(document), what
        with pytest.raises(ValidationError):
            PlateJob.model_validate_json(json.dumps(document))


@pytest.mark.redis
def test_real_jobs_and_readings_validate_against_the_schema(
    settings: Settings, redis_client: redis.Redis
) -> None:
    from reader.engine import PlateReader, bundled_model_path
    from worker.batch_worker import BatchWorker

    if not bundled_model_path().exists():
        pytest.skip("no bundled weights")
    from plate_ocr.demo import sample_dir

    crops = [p.read_bytes() for p in sorted(sample_dir().glob("*.jpg"))[:3]]
    producer = PlateProducer(settings, connection=redis_client)
    producer.submit_many([*crops, b"not an image"], camera_id="gate-1")
    producer.submit_ref("file:///etc/passwd")  # refused by the worker: path_not_allowed

    queue = rq.Queue(settings.queue, connection=redis_client, serializer=JSONSerializer)
    jobs = [job.args[0] for job in queue.jobs]
    contract = validator(json_schemas())
    for job in jobs:
        validator(json_schema(PlateJob)).validate(job)
        contract.validate(job)

    reader = PlateReader(device="cpu")
    BatchWorker(settings, reader=reader, connection=redis_client).work(burst=True)
    entries = redis_client.xrange(settings.results_stream)
    readings = [json.loads(fields[b"reading"]) for _, fields in entries]
    assert len(readings) == 5
    assert {r["status"] for r in readings} == {"ok", "error"}
    assert any(r["characters"] for r in readings)
    for reading in readings:
        validator(json_schema(PlateReading)).validate(reading)
        contract.validate(reading)
    assert len(ReadingStream(settings, connection=redis_client).read_all()) == 5
