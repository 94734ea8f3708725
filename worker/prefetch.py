"""`Prefetcher`: prepare the next batch while the model reads this one.

Taking jobs from Redis and decoding their images is I/O and light CPU work (OpenCV releases the
GIL); the model call is the expensive part. A single background thread runs the producing side
one batch ahead, through a queue of `depth` items, so the model never waits for Redis or for the
JPEG decoder. The depth bounds what a worker holds: at most `depth + 1` batches are started and
not yet finished, which is what the shutdown grace period has to cover.
"""

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["DRAINED", "Drained", "Prefetcher"]

log = logging.getLogger("plate_ocr.worker.prefetch")

T = TypeVar("T")


class Drained:
    """Returned by the producing callable when there is nothing more to do (burst mode)."""


DRAINED = Drained()
_PUT_POLL_S = 0.1


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[T]):
    """Iterate over what `produce()` returns, computed one step ahead in a thread.

    `produce` returns an item, None (nothing this time: ask again) or DRAINED (stop). Iteration
    also ends once `should_stop()` is true and what was already produced has been handed out:
    a batch that was started is never dropped. An exception in `produce` is re-raised here.
    """

    def __init__(
        self,
        produce: Callable[[], T | Drained | None],
        *,
        should_stop: Callable[[], bool],
        depth: int = 1,
    ) -> None:
        self._produce = produce
        self._should_stop = should_stop
        self._items: queue.Queue[T | Drained | _Failed] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        while True:
            item = self._items.get()
            if isinstance(item, Drained):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the thread without waiting for it (it only ever blocks briefly)."""
        self._closed.set()

    def _run(self) -> None:
        try:
            while not self._should_stop() and not self._closed.is_set():
                item = self._produce()
                if isinstance(item, Drained):
                    break
                if item is not None:
                    self._put(item)
        except BaseException as e:  # handed to the consuming thread, which decides
            self._put(_Failed(e))
            return
        self._put(DRAINED)

    def _put(self, item: T | Drained | _Failed) -> None:
        while not self._closed.is_set():
            try:
                self._items.put(item, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                continue
