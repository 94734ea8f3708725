"""The light producer side: enqueue plate crops, optionally wait for their readings.

Importing this package never imports torch, ultralytics or OpenCV (a test holds it to that), so it
runs on an edge box with only redis, rq, pydantic and numpy installed.
"""

from plate_ocr.errors import QueueFull, ReadingTimeout
from producer.png import encode_png
from producer.producer import (
    ImageNotFound,
    ImageTooLarge,
    InvalidJob,
    MetadataTooLarge,
    PlateProducer,
)

__all__ = [
    "ImageNotFound",
    "ImageTooLarge",
    "InvalidJob",
    "MetadataTooLarge",
    "PlateProducer",
    "QueueFull",
    "ReadingTimeout",
    "encode_png",
]
