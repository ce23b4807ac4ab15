"""Make SIGTERM and SIGHUP unwind the stack like Ctrl-C, so every `finally` tears the lab down.

Python turns SIGINT into KeyboardInterrupt by itself; SIGTERM's default kills the process on
the spot and would leave namespaces behind. Inside `unwinding_signals()` both raise
`Terminated`, a KeyboardInterrupt. `blocked_signals()` keeps them out while teardown runs, so a
second Ctrl-C cannot cut it short; they are delivered when it ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

UNWIND_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
TEARDOWN_BLOCKED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives inside `unwinding_signals`."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def unwinding_signals() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise `Terminated`; outside, the old handlers are back.

    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in UNWIND_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def blocked_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while the block runs (delivered at its end)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, TEARDOWN_BLOCKED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
