"""`stopped_by_signals`: a signal inside the block calls stop; the old handler comes back."""

import os
import signal

from consumers.stopping import stopped_by_signals


def test_a_signal_inside_the_block_stops_and_the_old_handler_returns() -> None:
    stopped: list[bool] = []
    before = signal.getsignal(signal.SIGTERM)
    with stopped_by_signals(lambda: stopped.append(True)):
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped == [True]
    assert signal.getsignal(signal.SIGTERM) is before
