"""`plate-ocr enqueue`: put image files and folders of them on the queue.

Prints one job id per line on stdout (so it pipes into other tools), or only the count with
`--quiet`; the progress bar goes to stderr and only for large batches on a terminal.
"""

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from tqdm import tqdm

from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from producer.producer import ImageNotFound, PlateProducer
from schemas import ErrorCode

__all__ = ["IMAGE_SUFFIXES", "check_allowed", "find_images", "run_enqueue"]

log = logging.getLogger("producer.cli")

# What a folder is searched for; a file named on the command line is sent whatever its suffix.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})

_CHUNK = 256  # images per submit_many: one round trip each, and a bounded pipeline in memory
_PROGRESS_MIN_FILES = 1_000  # below this a progress bar is noise


def find_images(paths: Iterable[Path]) -> list[Path]:
    """The files named, plus the images under the folders named (recursively), each once."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            under = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            found.update(dict.fromkeys(sorted(p for p in under if p.is_file())))
        elif path.is_file():
            found[path] = None
        else:
            raise ImageNotFound(f"{path} is neither a file nor a folder")
    return list(found)


def check_allowed(images: Sequence[Path], allowed_roots: Sequence[Path]) -> None:
    """Refuse to send references the worker will refuse: none are allowed, or a file is outside.

    Only a courtesy to the user (the worker checks every reference again, and decides), so it
    judges with this machine's PLATE_OCR_ALLOWED_ROOTS, which by-reference workers share.
    """
    if not allowed_roots:
        raise JobError(
            ErrorCode.PATH_NOT_ALLOWED,
            "--by-reference sends file:// references, which workers read only under "
            "PLATE_OCR_ALLOWED_ROOTS, and none is set: set it (os.pathsep-separated folders) "
            "or enqueue the bytes (drop --by-reference)",
        )
    roots = [root.resolve() for root in allowed_roots]
    outside = [p for p in images if not any(p.resolve().is_relative_to(r) for r in roots)]
    if outside:
        listed = os.pathsep.join(map(str, allowed_roots))
        raise JobError(
            ErrorCode.PATH_NOT_ALLOWED,
            f"{len(outside)} of {len(images)} images lie outside PLATE_OCR_ALLOWED_ROOTS "
            f"({listed}), e.g. {outside[0]}; workers would refuse them",
        )


def run_enqueue(
    settings: Settings,
    paths: Sequence[Path],
    *,
    camera_id: str | None,
    by_reference: bool,
    quiet: bool,
    track_id: str | None = None,
) -> int:
    """Enqueue every image under `paths`; with `by_reference`, send file:// URIs, not bytes.

    References are absolute `Path.as_uri()` URIs (percent-encoded); the worker only opens them
    under its PLATE_OCR_ALLOWED_ROOTS, so the files must be visible to it at the same path.
    """
    images = find_images(paths)
    if not images:
        log.error("no images found under %s", ", ".join(map(str, paths)))
        return 1
    if by_reference:
        check_allowed(images, settings.allowed_roots)
    enqueued = 0
    show_bar = len(images) >= _PROGRESS_MIN_FILES and not quiet
    with (
        PlateProducer(settings) as producer,
        # disable=None: tqdm turns itself off when stderr is not a terminal.
        tqdm(
            total=len(images), unit="img", file=sys.stderr, disable=None if show_bar else True
        ) as bar,
    ):
        # A Redis that never answered is a wrong URL or a server that is not up: say so at once,
        # rather than ride it out as an outage (what the retries below do once it has answered).
        producer.ping()
        for start in range(0, len(images), _CHUNK):
            chunk = images[start : start + _CHUNK]
            items = [p.resolve().as_uri() for p in chunk] if by_reference else chunk
            job_ids = producer.submit_many(items, camera_id=camera_id, track_id=track_id)
            enqueued += len(job_ids)
            bar.update(len(chunk))
            if not quiet:
                # Through tqdm so that ids and the bar do not garble each other on one terminal.
                for job_id in job_ids:
                    tqdm.write(job_id, file=sys.stdout)
    if quiet:
        print(enqueued)
    log.info("enqueued %d images on %r", enqueued, settings.queue)
    return 0
