"""What a long stage shows while it runs: a stage line with a live elapsed-time counter for work
that cannot report progress (a TFLite conversion), and a progress bar for work that loops
(calibration, verification). Both write to stderr through tqdm; nothing here imports TensorFlow."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Optional


@contextmanager
def elapsed(description: str, enabled: bool = True, interval: float = 1.0):
    """``with elapsed("converting"):`` shows ``converting: 12s`` while the block runs, then the
    time it took."""
    from tqdm import tqdm

    bar = tqdm(total=None, desc=description, bar_format="{desc}: {elapsed}", disable=not enabled, leave=True)
    done = threading.Event()

    def tick():
        while not done.wait(interval):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.set_description_str(f"{description} (done in {time.perf_counter() - started:.0f} s)")
        bar.close()


def counted(items: Iterable, description: str, total: Optional[int] = None, unit: str = "image",
            enabled: bool = True) -> Iterable:
    """``items`` with a progress bar."""
    from tqdm import tqdm

    return tqdm(items, desc=description, total=total, unit=unit, disable=not enabled, leave=True)


def bar_updater(description: str, total: int, unit: str = "image", enabled: bool = True) -> tuple:
    """``(update(n), close())`` of a progress bar, for loops that report counts as they go."""
    from tqdm import tqdm

    bar = tqdm(desc=description, total=total, unit=unit, disable=not enabled, leave=True)
    update: Callable[[int], None] = bar.update
    return update, bar.close
