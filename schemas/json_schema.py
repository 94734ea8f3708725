"""The JSON Schema of the contract, generated from the pydantic models, for other languages.

Generated, never written by hand, so a field added to a model is in the schema the moment it is
in the code. Each model is described as it travels: a job as a producer may write it (fields
with defaults may be left out), a reading as the worker writes it (every field is always there,
so every field is `required`). Cross-field rules the models check in Python (a reading has an
`error` exactly when its status is `error`; a job has exactly one image) are stated by the models
themselves (`json_schema_extra`), so the schema and the code refuse the same documents.
"""

from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from schemas.alert import PlateAlert
from schemas.event import PlateEvent
from schemas.job import PlateJob
from schemas.reading import PlateReading
from schemas.version import SCHEMA_VERSION

__all__ = ["CONTRACT_MODELS", "DIALECT", "json_schema", "json_schemas", "schema_id"]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

_MAJOR: Final = SCHEMA_VERSION.split(".", 1)[0]

# Every document of the contract, with the side of the wire it is described from: "validation"
# for what others write to us (defaults may be omitted), "serialization" for what we write
# (always complete). A new model of the contract is one more line here.
CONTRACT_MODELS: Final[tuple[tuple[type[BaseModel], JsonSchemaMode], ...]] = (
    (PlateJob, "validation"),
    (PlateReading, "serialization"),
    (PlateEvent, "serialization"),
    (PlateAlert, "serialization"),
)


class _ContractJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, except that what we write lists every field it always carries."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization" and field.get("serialization_exclude_if") is None:
            return True  # model_dump_json() writes every field, defaults included
        return super().field_is_required(field, total)


def schema_id(name: str) -> str:
    """The `$id` of a schema document: stable for a major version, like the contract itself."""
    return f"urn:plate-ocr-stream:schema:{_MAJOR}:{name}"


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """One model's standalone schema document (its nested models under `$defs`)."""
    (mode,) = (m for known, m in CONTRACT_MODELS if known is model)
    body = model.model_json_schema(mode=mode, schema_generator=_ContractJsonSchema)
    return {"$schema": DIALECT, "$id": schema_id(model.__name__), **body}


def json_schemas() -> dict[str, Any]:
    """One document for the whole contract: every model under `$defs`, and a top-level `oneOf`,
    so a document validates only if it is exactly one of them, in full."""
    refs, body = models_json_schema(
        [(model, mode) for model, mode in CONTRACT_MODELS],
        schema_generator=_ContractJsonSchema,
        title="plate-ocr-stream contract",
        description=f"Jobs and readings of schema_version {SCHEMA_VERSION}",
    )
    one_of = [refs[(model, mode)] for model, mode in CONTRACT_MODELS]
    return {"$schema": DIALECT, "$id": schema_id("contract"), **body, "oneOf": one_of}
