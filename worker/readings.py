"""Building `PlateReading`s: the one place that fills in the contract from what the worker knows."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from plate_ocr.errors import JobError
from schemas import CharacterReading, ModelInfo, PlateReading, ReadingError, Timings, reading_id_for
from worker.intake import Envelope

__all__ = ["ReadingFactory", "Recognition"]


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


def _ms_since(start: datetime | None, end: datetime) -> float:
    return 0.0 if start is None else max((end - start).total_seconds() * 1000.0, 0.0)


@dataclass(frozen=True)
class ReadingFactory:
    """Stamps the worker's identity (model, device, worker id) on every reading."""

    model: ModelInfo
    device: str
    worker_id: str

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
        return PlateReading(
            job_id=envelope.job_id,
            reading_id=reading_id_for(envelope.job_id, self.model.sha256),
            model=self.model,
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
