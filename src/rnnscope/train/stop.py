"""Ctrl-C and SIGTERM stop training cleanly: at the end of the batch, after a checkpoint.

While `train()` runs, SIGINT and SIGTERM only set a flag. The loop finishes the batch it is in,
writes checkpoints/latest.pt of that last completed step and raises `Interrupted`, which the CLI
prints as one line with the exact --resume command, exiting 130 (SIGINT) or 143 (SIGTERM), the
shell's 128 + signal number. A second signal does not wait: it raises `Interrupted` at once
(a step stuck in a collective whose peer is gone), and the last checkpoint written stays.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Training stopped by a signal; `exit_code` is 128 + the signal's number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class SignalStop:
    """Turns SIGINT/SIGTERM into a request the loop honours at the end of a batch."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def install(self) -> SignalStop:
        """Catch the stop signals (only the main thread can; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Give the signals back to whoever had them before."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second one: stop now
            raise Interrupted(f"stopped by {signal.Signals(signum).name} during a step", signum)
        self.signum = signum

    def check(self, step: int, saved: Path | None) -> None:
        """At the end of a batch: raise Interrupted when a stop was requested."""
        if self.signum is None:
            return
        name = signal.Signals(self.signum).name
        kept = f"checkpoint {saved} holds step {step}" if saved else f"stopped at step {step}"
        raise Interrupted(f"stopped by {name}; {kept}", self.signum)

    def after_failure(self, exc: BaseException) -> None:
        """An error after a stop signal (a peer that stopped first closed its connections) is
        the stop, not a failure: raise Interrupted instead of a traceback."""
        if self.signum is not None and not isinstance(exc, Interrupted):
            raise Interrupted(f"stopped by {signal.Signals(self.signum).name} (a peer ended "
                              f"first: {type(exc).__name__})", self.signum) from None
