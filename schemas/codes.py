"""Stable error codes carried by error readings. Consumers switch on these; never rename one."""

from enum import StrEnum

__all__ = ["ErrorCode"]


class ErrorCode(StrEnum):
    # The image itself.
    EMPTY_IMAGE = "empty_image"
    UNDECODABLE_IMAGE = "undecodable_image"
    IMAGE_TOO_LARGE = "image_too_large"  # over the byte limit
    IMAGE_TOO_MANY_PIXELS = "image_too_many_pixels"  # decompression bomb guard
    INVALID_BASE64 = "invalid_base64"
    # References to the image.
    IMAGE_NOT_FOUND = "image_not_found"  # missing file
    IMAGE_KEY_MISSING = "image_key_missing"  # missing redis:// key
    PATH_NOT_ALLOWED = "path_not_allowed"  # outside the configured roots
    UNSUPPORTED_REFERENCE = "unsupported_reference"
    # The job envelope.
    INVALID_JOB = "invalid_job"  # schema validation failed
    METADATA_TOO_LARGE = "metadata_too_large"
    FOREIGN_FUNCTION = "foreign_function"  # the job names a function we never run
    UNDECODABLE_PAYLOAD = "undecodable_payload"  # not RQ JSON (pickle, garbage)
    # Running it.
    INFERENCE_FAILED = "inference_failed"
    RETRIES_EXHAUSTED = "retries_exhausted"
