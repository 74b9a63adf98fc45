"""What every subcommand shares."""
from __future__ import annotations

import logging


def setup_logging() -> None:
    """INFO from the kit, errors only from TensorFlow and friends."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def parse_ints(text: str, flag: str) -> tuple:
    """``"1,2"`` -> ``(1, 2)``; a clear error naming ``flag`` otherwise."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated whole numbers, got {text!r}") from None
