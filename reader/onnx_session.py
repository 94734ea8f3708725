"""Opening an ONNX Runtime session the way both of the light runtime's models need it.

One place for the knobs a worker sets (`default_threads`, `ort_spinning`): the
detector and the line recogniser run in one process, and two sessions that each take every core
and spin while idle slow each other down.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plate_ocr.errors import ModelError

__all__ = ["Provider", "default_threads", "open_session"]

Provider = str | tuple[str, dict[str, str]]


def open_session(
    path: Path,
    *,
    threads: int | None,
    spinning: bool,
    providers: Sequence[Provider] = ("CPUExecutionProvider",),
    what: str = "model",
) -> Any:
    """An `onnxruntime.InferenceSession` for `path`; ModelError when it cannot be loaded.

    `threads` is the intra-op thread count (None: ONNX Runtime's own default); `spinning=False`
    stops idle threads spinning.
    """
    import onnxruntime as ort  # imported with the reader, not before

    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own untyped errors for bad graphs
        raise ModelError(f"ONNX Runtime cannot load the {what} {path}: {e}") from e
    # By default a provider error inside run() makes ONNX Runtime print a line, rebuild the
    # session on the CPU for good and retry: a GPU reader would go on at CPU speed unseen.
    # Disabled, the error reaches the caller (a failed model call, retried and counted).
    session.disable_fallback()
    return session


def default_threads() -> int:
    """ONNX Runtime's intra-op threads per session for a worker: half the CPUs this process may
    use, at least one. Its own default (one per core) loses here: on 2 cores the model with 2
    threads read 17.5-20.2 plates/s against 31.2-37.9 with one (bench/bench.py, loaded box),
    because the worker's prefetch thread and Redis want a core too, and an intra-op thread that
    is preempted stalls the others at every operator's barrier. On SMT machines half the CPUs
    is about one per physical core."""
    try:
        cpus = len(os.sched_getaffinity(0))  # a container's CPU set, not the host's
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)
