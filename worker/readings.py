"""Building `PlateReading`s: the one place that fills in the contract from what the worker knows."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from plate_ocr.errors import JobError
from schemas import (
    Candidate,
    CharacterReading,
    ModelInfo,
    PlateReading,
    ReadingError,
    Timings,
    reading_id_for,
)
from worker.intake import Envelope

__all__ = ["ReadingFactory", "Recognition", "reading_id_of"]


class Recognition(Protocol):
    """What the OCR engine returns for one crop."""

    @property
    def text(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def characters(self) -> tuple[CharacterReading, ...]: ...
    @property
    def rows(self) -> int: ...
    @property
    def candidates(self) -> tuple[tuple[str, float], ...]: ...


def _models_of(result: Recognition) -> dict[str, ModelInfo | None]:
    models = getattr(result, "models", None)
    return {} if models is None else {"model": models[0], "recogniser": models[1]}


def reading_id_of(job_id: str, model_sha256: str, requeues: int) -> str:
    """The job's reading id for this attempt: the same for every retry and recovery of it, a new
    one for each time a person requeued the job after it ended (derived, so every worker agrees)."""
    first = reading_id_for(job_id, model_sha256)
    return first if requeues == 0 else str(uuid.uuid5(uuid.UUID(first), f"requeue:{requeues}"))


def _ms_since(start: datetime | None, end: datetime) -> float:
    return 0.0 if start is None else max((end - start).total_seconds() * 1000.0, 0.0)


@dataclass(frozen=True)
class ReadingFactory:
    """Stamps the worker's identity (models, device, worker id) on every reading.

    Reading ids derive from the job and the weights; with a recogniser (and a fast reader in
    front: the cascade), from all the models' hashes, so reading a job with other models is a
    new reading, and retrying it is not. A result that names the models that read it (the
    cascade's) is published with those in `model` and `recogniser`.
    """

    model: ModelInfo
    device: str
    worker_id: str
    recogniser: ModelInfo | None = None
    fast: ModelInfo | None = None

    @property
    def models_sha256(self) -> str:
        if self.recogniser is None:
            return self.model.sha256
        models = [self.model, self.recogniser] + ([self.fast] if self.fast is not None else [])
        return hashlib.sha256("+".join(m.sha256 for m in models).encode()).hexdigest()

    def ok(
        self,
        envelope: Envelope,
        result: Recognition,
        *,
        enqueued_at: datetime | None,
        taken_at: datetime,
        decode_ms: float,
        infer_ms: float,
    ) -> PlateReading:
        return self._reading(
            envelope,
            enqueued_at=enqueued_at,
            taken_at=taken_at,
            decode_ms=decode_ms,
            infer_ms=infer_ms,
            status="ok",
            text=result.text,
            confidence=result.confidence,
            characters=result.characters,
            rows=result.rows,
            candidates=tuple(Candidate(text=t, confidence=p) for t, p in result.candidates),
            **_models_of(result),
        )

    def error(
        self,
        envelope: Envelope,
        error: JobError,
        *,
        enqueued_at: datetime | None = None,
        taken_at: datetime | None = None,
        decode_ms: float = 0.0,
    ) -> PlateReading:
        return self._reading(
            envelope,
            enqueued_at=enqueued_at,
            taken_at=taken_at,
            decode_ms=decode_ms,
            infer_ms=0.0,
            status="error",
            error=ReadingError(code=error.code, message=error.message[:2000]),
        )

    def _reading(
        self,
        envelope: Envelope,
        *,
        enqueued_at: datetime | None,
        taken_at: datetime | None,
        decode_ms: float,
        infer_ms: float,
        **outcome: Any,
    ) -> PlateReading:
        created_at = datetime.now(UTC)
        # The worker's models, unless the outcome names the ones that read this crop.
        model: ModelInfo = outcome.pop("model", self.model)
        recogniser: ModelInfo | None = outcome.pop("recogniser", self.recogniser)
        return PlateReading(
            job_id=envelope.job_id,
            reading_id=reading_id_of(envelope.job_id, self.models_sha256, envelope.requeues),
            supersedes=envelope.supersedes,
            model=model,
            recogniser=recogniser,
            device=self.device,
            worker_id=self.worker_id,
            camera_id=envelope.camera_id,
            track_id=envelope.track_id,
            metadata=envelope.metadata,
            timings=Timings(
                queue_wait_ms=_ms_since(enqueued_at, taken_at or created_at),
                decode_ms=decode_ms,
                infer_ms=infer_ms,
                total_ms=_ms_since(enqueued_at, created_at),
            ),
            created_at=created_at,
            **outcome,
        )
