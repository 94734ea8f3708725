"""`stopped_by_signals`: how a consumer command stops on SIGTERM or Ctrl-C.

Inside the block the signals call the consumer's own `stop` (it finishes what it holds,
acknowledges it and returns); the handlers in place before come back afterwards, so a test or an
embedding program that runs a consumer keeps its own.
"""

import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["STOP_SIGNALS", "stopped_by_signals"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stopped_by_signals(
    stop: Callable[[], object], signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> Iterator[None]:
    previous = {s: signal.signal(s, lambda *_: stop()) for s in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
