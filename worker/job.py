"""The one job function a worker runs, by name (`plate_ocr.constants.JOB_FUNC_NAME`).

The batching worker never imports a function from a job's payload: it checks the name and reads
the crop itself, a batch at a time. This module exists so that the name points at real code:
a plain `rq worker` (the per-job baseline in `bench/`) can run the same jobs one by one.
"""

from typing import Any

from pydantic import ValidationError

from plate_ocr.errors import JobError
from schemas import ErrorCode, PlateJob

__all__ = ["read_plate_job"]


def read_plate_job(job: dict[str, Any]) -> dict[str, Any]:
    """Read one PlateJob with the bundled model, the way a user would with plain RQ.

    Inline images only; references need the worker's settings (allowed roots, Redis).
    """
    from reader.compat import read_plate_bytes

    try:
        plate_job = PlateJob.model_validate(job)
    except ValidationError as e:
        raise JobError(ErrorCode.INVALID_JOB, str(e)) from e
    if plate_job.image_b64 is None:
        raise JobError(ErrorCode.UNSUPPORTED_REFERENCE, "read_plate_job takes inline images")
    return read_plate_bytes(plate_job.image_b64)
