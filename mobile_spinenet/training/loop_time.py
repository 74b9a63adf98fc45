"""Where a training loop's wall time goes: the steps themselves, and everything between them
(waiting for a batch, validation with its batch-norm re-estimate, checkpoints, plots, logs).
The trainer keeps one :class:`LoopClock` per ``fit``; its summary goes into the run's record
(``run.json``, ``"time"``) and ``bench train --epochs`` prints it."""
from __future__ import annotations

import contextlib
import time

# The phases timed separately; the rest of the wall time (progress bar, step logs, the loss
# check, the epoch's bookkeeping) is "other".
PHASES = ("steps", "input", "validation", "checkpoints", "plots")


class LoopClock:
    """Accumulates seconds per phase from its creation on."""

    def __init__(self):
        self.started = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.steps = 0
        self.images = 0

    @contextlib.contextmanager
    def timing(self, phase: str):
        if phase not in self.seconds:
            raise ValueError(f"unknown loop phase {phase!r}; known: {', '.join(PHASES)}")
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - began

    def count_step(self, images: int) -> None:
        self.steps += 1
        self.images += images

    def summary(self) -> dict:
        """Wall seconds, images/s of the whole loop and of the steps alone, and each phase's share
        of the wall time (``outside_share``: everything but the steps)."""
        wall = max(time.perf_counter() - self.started, 1e-9)
        timed = sum(self.seconds.values())
        shares = {f"{phase}_share": seconds / wall for phase, seconds in self.seconds.items() if phase != "steps"}
        step_seconds = self.seconds["steps"]
        return {"wall_seconds": round(wall, 3), "step_seconds": round(step_seconds, 3), "steps": self.steps,
                "images": self.images,
                "loop_images_per_s": self.images / wall,
                "step_images_per_s": self.images / step_seconds if step_seconds > 0 else 0.0,
                "outside_share": max(0.0, 1.0 - step_seconds / wall),
                **shares, "other_share": max(0.0, (wall - timed) / wall)}


def format_loop_time(summary: dict) -> str:
    """One line, e.g. ``1,200 images in 96.1 s: 12.5 images/s (steps alone 13.4); 7.0% outside the
    steps: input 0.4%, validation 5.1%, checkpoints 0.6%, plots 0.5%, other 0.4%``."""
    parts = ", ".join(f"{phase} {100 * summary[f'{phase}_share']:.1f}%" for phase in (*PHASES[1:], "other"))
    return (f"{summary['images']:,} images in {summary['wall_seconds']:.1f} s: {summary['loop_images_per_s']:.1f} "
            f"images/s (steps alone {summary['step_images_per_s']:.1f}); {100 * summary['outside_share']:.1f}% "
            f"outside the steps: {parts}")
