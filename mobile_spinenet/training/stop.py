"""Stopping a training loop cleanly on Ctrl-C (SIGINT) or ``kill`` (SIGTERM, also what schedulers
send before they preempt a job): the first signal asks the loop to stop at its next safe point,
where it saves a checkpoint of the step it reached, so no step is lost and ``--resume`` continues
from there. A second Ctrl-C interrupts at once (the last periodic checkpoint stays). A signal
the parent process set to be ignored (a background job's SIGINT) stays ignored."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Optional

log = logging.getLogger("mobile_spinenet.train")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Training stopped on a signal after saving a checkpoint; not an error. ``exit_code`` is the
    shell's convention for a process ended by that signal (128 + its number)."""

    def __init__(self, signum: int, step: int, total_steps: int, checkpoint: str):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} of {total_steps}; checkpoint "
                         f"saved ({checkpoint})")


class SignalStop:
    """A context manager that turns SIGINT/SIGTERM into a request the loop polls
    (``requested``), then restores the previous handlers. Outside the main thread, where Python
    cannot install handlers, it does nothing."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            log.warning("%s: finishing this step, saving a checkpoint, then stopping (Ctrl-C again stops at once)",
                        signal.Signals(signum).name)

    def __enter__(self) -> "SignalStop":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN:
                    self._previous[signum] = signal.SIG_DFL if previous is None else previous
                    signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def stopped(self, step: int, total_steps: int, checkpoint: str) -> StopRequested:
        return StopRequested(self.signum, step, total_steps, checkpoint)
