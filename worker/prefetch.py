"""`Prefetcher`: prepare the next batch while the model reads this one.

Taking jobs from Redis and decoding their images is I/O and light CPU work (OpenCV releases the
GIL); the model call is the expensive part. A single background thread runs the producing side
`depth` batches ahead, so the model never waits for Redis or for the JPEG decoder. The depth
bounds what a worker holds: at most `depth + 1` batches are started and not yet finished (the
one in the model and those prefetched), which is what the shutdown grace period must cover.
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
_POLL_S = 0.1


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
        # A slot is taken before producing and given back when the consumer takes the item, so
        # at most `depth` items are produced and not yet consumed, counting one being produced.
        self._slots = threading.Semaphore(depth)
        self._items: queue.Queue[T | Drained | _Failed] = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        while True:
            item = self._items.get()
            self._slots.release()
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
            while self._take_slot():
                item = self._produce()
                if isinstance(item, Drained):
                    break
                if item is None:
                    self._slots.release()
                else:
                    self._items.put(item)
        except BaseException as e:  # handed to the consuming thread, which decides
            self._items.put(_Failed(e))
            return
        self._items.put(DRAINED)

    def _take_slot(self) -> bool:
        """Wait for the consumer to make room; False once we should stop producing."""
        while not self._slots.acquire(timeout=_POLL_S):
            if self._stopped():
                return False
        if self._stopped():
            self._slots.release()
            return False
        return True

    def _stopped(self) -> bool:
        return self._closed.is_set() or self._should_stop()
